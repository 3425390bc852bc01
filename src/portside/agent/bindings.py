"""networkBindings as ECS reports them, derived from Docker's inspect (spec ecs.md §1.6)."""

from __future__ import annotations

from typing import Any

from portside.core.task import PortPlan


def bindings_from_docker(
    ports: dict[str, list[dict[str, str]] | None], plans: list[PortPlan]
) -> list[dict[str, Any]]:
    """Convert Docker's ``NetworkSettings.Ports`` into ECS networkBindings.

    IPv6 duplicates (``::``) are dropped, as the ECS agent does by default, so one
    container port yields one target. A containerPortRange is reported as one
    binding with ``containerPortRange`` and ``hostPortRange``.
    """
    found: dict[tuple[int, str], tuple[str, int]] = {}
    for key, entries in ports.items():
        port_text, _, protocol = key.partition("/")
        for entry in entries or []:
            host_ip = entry.get("HostIp", "")
            if ":" in host_ip:
                continue
            found[(int(port_text), protocol or "tcp")] = (host_ip or "0.0.0.0", int(entry["HostPort"]))
            break
    bindings: list[dict[str, Any]] = []
    for plan in plans:
        if plan.container_port_range:
            start, end = (int(x) for x in plan.container_port_range.split("-"))
            hits = [found.get((p, plan.protocol)) for p in range(start, end + 1)]
            if all(hits):
                host_ports = [h[1] for h in hits if h]
                bindings.append(
                    {
                        "bindIP": hits[0][0] if hits[0] else "0.0.0.0",
                        "protocol": plan.protocol,
                        "containerPortRange": plan.container_port_range,
                        "hostPortRange": f"{min(host_ports)}-{max(host_ports)}",
                    }
                )
            continue
        hit = found.get((plan.container_port or 0, plan.protocol))
        if hit:
            bindings.append(
                {"bindIP": hit[0], "containerPort": plan.container_port, "hostPort": hit[1], "protocol": plan.protocol}
            )
    return bindings


def host_mode_bindings(plans: list[PortPlan]) -> list[dict[str, Any]]:
    return [
        {"bindIP": "0.0.0.0", "containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol}
        for p in plans
        if p.container_port is not None
    ]
