"""The agent's side of host ports: the pure allocator plus a real bind probe and persistence."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from portside.core.ports import PortAllocator, PortRange, parse_range_flag, range_from_kernel
from portside.core.task import PortPlan, Task

META_KEY = "port_allocator"

log = logging.getLogger("portside.agent")


def bind_probe(protocol: str, port: int) -> bool:
    """True when ``port`` can be bound on every address for ``protocol`` right now (ECS's probe)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def choose_range(flag: str | None, kernel_text: str | None) -> tuple[PortRange, str | None]:
    """The dynamic range in effect and a warning to log, from the flag, else the kernel, else the fallback."""
    if flag:
        return parse_range_flag(flag), None
    return range_from_kernel(kernel_text)


def plan_ports(task: Task, content: dict[str, Any]) -> None:
    """Fill each container's PortPlan list from its portMappings (host ports not yet chosen)."""
    by_name = {d["name"]: d for d in content["containerDefinitions"]}
    mode = task.network_mode
    for container in task.containers:
        plans = []
        for mapping in by_name[container.name].get("portMappings") or []:
            protocol = mapping.get("protocol", "tcp")
            if mapping.get("containerPortRange"):
                plans.append(
                    PortPlan(None, None, protocol, container_port_range=mapping["containerPortRange"], dynamic=True)
                )
                continue
            container_port = mapping.get("containerPort")
            host_port = mapping.get("hostPort") or 0
            if mode in ("host", "awsvpc"):
                host_port = host_port or container_port
            plans.append(PortPlan(container_port, host_port or None, protocol, dynamic=not host_port))
        container.ports = plans


def assign_ports(
    allocator: PortAllocator, task: Task, now: float, probe: Callable[[str, int], bool] = bind_probe
) -> None:
    """Choose a host port for every dynamic mapping and hold every static one, all or nothing.

    Raises PortsExhausted (ECS's message) or ValueError (a static port held by another task);
    on failure nothing stays held for the task.
    """
    try:
        for container in task.containers:
            for plan in container.ports:
                if task.network_mode == "awsvpc":
                    continue  # awsvpc ports live on the task's own address, not the host's
                if plan.container_port_range:
                    start, end = (int(x) for x in plan.container_port_range.split("-"))
                    ports = allocator.assign(task.arn, plan.protocol, end - start + 1, now, probe)
                    plan.host_port_range = f"{ports[0]}-{ports[-1]}"
                elif plan.dynamic:
                    plan.host_port = allocator.assign(task.arn, plan.protocol, 1, now, probe)[0]
                elif plan.host_port:
                    allocator.hold(task.arn, plan.protocol, plan.host_port)
    except Exception:
        allocator.release(task.arn, now)
        for container in task.containers:
            for plan in container.ports:
                if plan.dynamic:
                    plan.host_port = None
                    plan.host_port_range = None
        raise


def reassign_port(allocator: PortAllocator, task: Task, bad_port: int | None, now: float) -> bool:
    """Docker could not bind ``bad_port``: quarantine it and move its mapping to a fresh port.

    Returns False when the failing port is not one of the task's dynamic ports (nothing to retry).
    """
    for container in task.containers:
        for plan in container.ports:
            if plan.dynamic and plan.host_port is not None and (bad_port is None or plan.host_port == bad_port):
                allocator.release_port(plan.protocol, plan.host_port, now)
                plan.host_port = allocator.assign(task.arn, plan.protocol, 1, now, bind_probe)[0]
                return True
    return False


def restore_holdings(allocator: PortAllocator, task: Task) -> None:
    """Re-hold a live task's ports after a restart (from what was persisted)."""
    for container in task.containers:
        for plan in container.ports:
            if task.network_mode == "awsvpc":
                continue
            if plan.host_port_range:
                start, end = (int(x) for x in plan.host_port_range.split("-"))
                for port in range(start, end + 1):
                    _hold_quietly(allocator, task.arn, plan.protocol, port)
            elif plan.host_port:
                _hold_quietly(allocator, task.arn, plan.protocol, plan.host_port)


def _hold_quietly(allocator: PortAllocator, owner: str, protocol: str, port: int) -> None:
    try:
        allocator.hold(owner, protocol, port)
    except ValueError as exc:  # two live tasks claim one port: a bug worth shouting about, not a crash
        log.error("restoring port holdings: %s", exc)
