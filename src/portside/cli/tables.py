"""Plain-text tables for people."""

from __future__ import annotations

from typing import Any


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def render_tasks(tasks: list[dict[str, Any]]) -> str:
    rows = []
    for task in tasks:
        task_id = task["taskArn"].rsplit("/", 1)[-1][:12]
        family = task["taskDefinitionArn"].rsplit("/", 1)[-1]
        for container in task.get("containers", []):
            ports = ", ".join(_binding(b) for b in container.get("networkBindings", [])) or "-"
            rows.append(
                [task_id, family, task["lastStatus"], container["name"], ports, container.get("healthStatus", "UNKNOWN")]
            )
            task_id = family = ""
    if not rows:
        return "no tasks"
    return table(["TASK", "DEFINITION", "STATUS", "CONTAINER", "PORTS", "HEALTH"], rows)


def _binding(binding: dict[str, Any]) -> str:
    ip = binding.get("bindIP", "0.0.0.0")
    if "hostPortRange" in binding:
        return f"{ip}:{binding['hostPortRange']}->{binding['containerPortRange']}/{binding.get('protocol', 'tcp')}"
    return f"{ip}:{binding['hostPort']}->{binding['containerPort']}/{binding.get('protocol', 'tcp')}"
