"""The agent protocol's actions on the API (``X-Amz-Target: PortsideAgent.<Action>``, JSON 1.1).

Signed with SigV4 and scoped to the ``ecs`` service, like the ECS calls an ECS agent makes;
RegisterContainerInstance is also served as the ECS action of that name. The operations are
``control/agent_protocol.py``'s, the same ones the server's own agent calls in process, and
``WatchRoutes`` (``control/routes_snapshot.py``), which load-balancer nodes call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import agent_protocol, log_shipping, routes_snapshot
from portside.control.plane import ControlPlane

TARGET_PREFIX = "PortsideAgent."
SIGNING_SERVICE = "ecs"

OPERATIONS: dict[str, Callable[[ControlPlane, str, dict[str, Any]], Any]] = {
    "RegisterContainerInstance": agent_protocol.register_container_instance,
    "PollAssignments": agent_protocol.poll_assignments,
    "SubmitTaskStateChange": agent_protocol.submit_task_state_change,
    "Heartbeat": agent_protocol.heartbeat,
    "PutContainerLogs": log_shipping.put_container_logs,  # what awslogs containers wrote
    "WatchRoutes": routes_snapshot.watch_routes,  # load-balancer nodes (portside lb)
}
