"""The agent protocol's actions on the API (``X-Amz-Target: PortsideAgent.<Action>``, JSON 1.1).

Signed with SigV4 and scoped to the ``ecs`` service, like the ECS calls an ECS agent makes;
RegisterContainerInstance is also served as the ECS action of that name. The operations are
``control/agent_protocol.py``'s, the same ones the server's own agent calls in process, and
``WatchRoutes`` (``control/routes_snapshot.py``) and ``ReportMetrics`` (``control/metric_reports.py``),
which load-balancer nodes call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import agent_protocol, log_shipping, metric_reports, routes_snapshot, usage_reports
from portside.control.plane import ControlPlane

TARGET_PREFIX = "PortsideAgent."
SIGNING_SERVICE = "ecs"

OPERATIONS: dict[str, Callable[[ControlPlane, str, dict[str, Any]], Any]] = {
    "RegisterContainerInstance": agent_protocol.register_container_instance,
    "PollAssignments": agent_protocol.poll_assignments,
    "SubmitTaskStateChange": agent_protocol.submit_task_state_change,
    "Heartbeat": agent_protocol.heartbeat,
    "PublishMetrics": usage_reports.publish_metrics,  # CPU and memory of running tasks
    "PutContainerLogs": log_shipping.put_container_logs,  # what awslogs containers wrote
    "WatchRoutes": routes_snapshot.watch_routes,  # load-balancer nodes (portside lb)
    "ReportMetrics": metric_reports.report_metrics,  # load-balancer nodes' CloudWatch measurements
}
