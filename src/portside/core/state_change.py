"""What an agent and the control plane tell each other about a task, and how each side merges it.

Theory of operation
-------------------
A task has facts with one writer each (docs/agent-protocol.md):

- the control plane writes what is *wanted*: ``desired_status``, the stop code and reason it
  gave, the load balancer targets, and ``DEACTIVATING`` (it drains a task's targets before the
  agent may stop it);
- the agent writes what *is*: ``last_status`` from PENDING on, every container's runtime id,
  status, exit code, reason, health, host ports and bindings, and the timestamps it reached.
  It asks for a stop itself only when an essential container exits or the task cannot start,
  as ECS's agent does.

The agent sends ``task_state_change(task)`` (ECS's ``SubmitTaskStateChange`` shape with a few
fields ECS's agent sends elsewhere); the control plane folds it into the stored task with
``apply_state_change``. The control plane sends the stored task as an assignment; the agent folds
the wanted facts into its own copy with ``apply_assignment``. Neither side ever copies a fact
the other one owns, and ``last_status`` only moves forward on both sides, so reports and
assignments may cross, repeat or arrive late without undoing anything.
"""

from __future__ import annotations

from typing import Any

from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.task import PortPlan, Task

#: Timestamps the agent stamps (the rest follow from last_status on the control plane's side too).
AGENT_TIMESTAMPS = (
    "pullStartedAt", "pullStoppedAt", "startedAt", "executionStoppedAt", "stoppingAt", "stoppedAt",
)


def agent_desired_status(task: Task) -> str:
    """What the agent must do with the task: RUNNING, or STOPPED once the control plane lets it stop.

    A DEACTIVATING task with load balancer targets is wanted STOPPED but still being drained: its
    containers keep serving the requests in flight until the drain ends and the control plane
    drops its targets.
    """
    if task.desired_status == "STOPPED" and not (task.last_status is TaskStatus.DEACTIVATING and task.lb_targets):
        return "STOPPED"
    return "RUNNING"


def task_state_change(task: Task) -> dict[str, Any]:
    """The agent's report of a task: SubmitTaskStateChange's shape plus what ECS's agent sends elsewhere.

    A stop the agent wants (``stopCode``, ``reason``) is taken only while the control plane still
    wants the task RUNNING; otherwise the control plane's own stop code and reason stand.
    """
    change: dict[str, Any] = {
        "cluster": task.cluster_arn,
        "task": task.arn,
        "status": task.last_status.name,
        "containers": [
            {
                "containerName": c.name,
                "runtimeId": c.docker_id,
                "status": c.last_status.name,
                "exitCode": c.exit_code,
                "reason": c.reason,
                "networkBindings": list(c.network_bindings),
                "healthStatus": c.health_status,
                "hostPorts": [{"hostPort": p.host_port, "hostPortRange": p.host_port_range} for p in c.ports],
                "privateIpv4Address": c.private_ip,
                "bridgeIpv4Address": c.bridge_ip,
            }
            for c in task.containers
        ],
        "timestamps": {k: v for k, v in task.timestamps.items() if k in AGENT_TIMESTAMPS},
    }
    if task.private_ip:
        change["privateIpv4Address"] = task.private_ip
    if task.desired_status == "STOPPED" and task.stop_code:
        change["stopCode"] = task.stop_code
        change["reason"] = task.stopped_reason or ""
    return change


def apply_state_change(stored: Task, change: dict[str, Any], now: float) -> bool:
    """Fold an agent's report into the control plane's task; return whether anything changed.

    Raises ValueError for a report that names an unknown status or container (nothing changed).
    """
    status = _task_status(change.get("status"))
    containers = change.get("containers") or []
    by_name = {c.name: c for c in stored.containers}
    for reported in containers:
        if reported.get("containerName") not in by_name:
            raise ValueError(f"containers: task {stored.id} has no container named {reported.get('containerName')!r}")
        _container_status(reported.get("status"))
    before = stored.to_json()
    if stored.desired_status == "RUNNING" and change.get("stopCode"):
        stored.request_stop(str(change["stopCode"]), str(change.get("reason") or ""), now)
    for reported in containers:
        container = by_name[reported["containerName"]]
        new = _container_status(reported.get("status"))
        if new >= container.last_status:
            container.last_status = new
        container.docker_id = reported.get("runtimeId") or container.docker_id
        for key, attr in (("exitCode", "exit_code"), ("reason", "reason"), ("privateIpv4Address", "private_ip"),
                          ("bridgeIpv4Address", "bridge_ip")):
            if reported.get(key) is not None:
                setattr(container, attr, reported[key])
        container.health_status = str(reported.get("healthStatus") or container.health_status)
        container.network_bindings = list(reported.get("networkBindings") or container.network_bindings)
        host_ports = reported.get("hostPorts")
        if isinstance(host_ports, list) and len(host_ports) == len(container.ports):
            for plan, chosen in zip(container.ports, host_ports, strict=True):
                if isinstance(chosen, dict) and plan.dynamic:
                    plan.host_port = chosen.get("hostPort") if isinstance(chosen.get("hostPort"), int) else plan.host_port
                    plan.host_port_range = chosen.get("hostPortRange") or plan.host_port_range
    if change.get("privateIpv4Address"):
        stored.private_ip = str(change["privateIpv4Address"])
    for stamp, at in (change.get("timestamps") or {}).items():
        if stamp in AGENT_TIMESTAMPS and isinstance(at, (int, float)) and not isinstance(at, bool):
            stored.timestamps.setdefault(stamp, float(at))  # the first stamp wins on both sides
    if status > stored.last_status:
        stored.advance(status, now)
    changed = stored.to_json() != before
    if changed:
        stored.version = max(stored.version, int(before["version"]) + 1)
    return changed


def apply_assignment(local: Task, assigned: Task) -> bool:
    """Fold the control plane's wanted facts into the agent's copy; return whether the agent must stop it."""
    if agent_desired_status(assigned) == "STOPPED" and local.desired_status == "RUNNING":
        local.request_stop(assigned.stop_code or "", assigned.stopped_reason or "", assigned.timestamps.get("stoppingAt", 0.0))
    local.lb_targets = [list(t) for t in assigned.lb_targets]
    return agent_desired_status(assigned) == "STOPPED" or local.desired_status == "STOPPED"


def new_agent_task(assigned: Task) -> Task:
    """The agent's own copy of a task it is given for the first time."""
    task = Task.from_json(assigned.to_json())
    if task.desired_status == "STOPPED" and agent_desired_status(assigned) == "RUNNING":
        task.desired_status = "RUNNING"  # draining: the agent keeps it running until told
    if task.last_status is TaskStatus.DEACTIVATING:
        task.last_status = TaskStatus.RUNNING
    return task


def needs_host_ports(task: Task) -> bool:
    """Whether a dynamic mapping of the task has no host port yet (else they were chosen before a restart)."""
    plans: list[PortPlan] = [p for c in task.containers for p in c.ports]
    return any(p.dynamic and p.host_port is None and p.host_port_range is None for p in plans)


def _task_status(value: Any) -> TaskStatus:
    try:
        return TaskStatus[str(value)]
    except KeyError:
        raise ValueError(f"status: {value!r} is not a task status") from None


def _container_status(value: Any) -> ContainerStatus:
    try:
        return ContainerStatus[str(value)]
    except KeyError:
        raise ValueError(f"containers.status: {value!r} is not a container status") from None
