"""Container start order within a task.

A container starts after the containers it names in ``dependsOn``, ``links`` and
``volumesFrom`` (ECS treats links and volumesFrom as implicit START
dependencies). Shutdown runs the order backwards. Validation has already refused
cycles and unknown names; this order is stable (definition order breaks ties).
"""

from __future__ import annotations

from typing import Any

CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")


def dependencies(definition: dict[str, Any]) -> dict[str, str]:
    """Container name -> condition this container waits for."""
    deps: dict[str, str] = {}
    for link in definition.get("links") or []:
        deps.setdefault(link.partition(":")[0], "START")
    for source in definition.get("volumesFrom") or []:
        deps.setdefault(source["sourceContainer"], "START")
    for dep in definition.get("dependsOn") or []:
        deps[dep["containerName"]] = dep["condition"]
    return deps


def start_order(definitions: list[dict[str, Any]]) -> list[str]:
    names = [d["name"] for d in definitions]
    pending = {d["name"]: set(dependencies(d)) for d in definitions}
    order: list[str] = []
    while pending:
        ready = [n for n in names if n in pending and not (pending[n] - set(order))]
        if not ready:
            raise ValueError(f"dependency cycle among containers {sorted(pending)}")
        for name in ready:
            order.append(name)
            del pending[name]
    return order


def condition_met(condition: str, status: str, exit_code: int | None, health: str) -> bool | None:
    """Whether a dependency in ``status`` satisfies ``condition``; None when it never can any more."""
    if condition == "START":
        return status in ("RUNNING", "STOPPED")
    if condition == "COMPLETE":
        return status == "STOPPED"
    if condition == "SUCCESS":
        if status == "STOPPED":
            return True if exit_code == 0 else None
        return False
    if condition == "HEALTHY":
        if health == "HEALTHY":
            return True
        if status == "STOPPED" or health == "UNHEALTHY":
            return None
        return False
    return None
