"""A task's log tail for the dashboard: the newest events of its ``awslogs`` containers' streams.

The streams are the ones ECS names and the agents ship to (``core/awslogs.py``:
``prefix/container/task-id``, or Docker's container id without a prefix), read from the
CloudWatch Logs store as GetLogEvents would. A task none of whose containers logs with awslogs
gets ``logged: false`` and a note saying so, never an empty tail that looks like silence.
"""

from __future__ import annotations

from typing import Any

from portside.control.plane import ControlPlane
from portside.core import awslogs
from portside.errors import InvalidParameterException

#: How many events the tail shows (newest last).
TAIL_EVENTS = 100


def task_log_tail(plane: ControlPlane, region: str, task_arn: Any, limit: int = TAIL_EVENTS) -> dict[str, Any]:
    if not isinstance(task_arn, str) or not task_arn:
        raise InvalidParameterException("task: give the task's ARN (?task=arn:aws:ecs:...).")
    task = plane.store.get_task(task_arn)
    if task is None or task.region != region:
        raise InvalidParameterException(f"task: {task_arn!r} was not found.")
    family, _, revision = task.task_definition_arn.rsplit("/", 1)[-1].partition(":")
    definition = plane.store.get_task_definition(region, family, int(revision) if revision.isdigit() else None) or {}
    runtime_ids = {c.name: c.docker_id for c in task.containers}
    sources = []
    for container in definition.get("containerDefinitions", []):
        settings = awslogs.awslogs_of(container, region)
        if settings is None:
            continue
        stream = awslogs.stream_name(settings, container["name"], task.id, runtime_ids.get(container["name"]))
        if stream:
            sources.append((settings, stream, container["name"]))
    events = []
    for settings, stream, name in sources:
        for event in plane.store.log_events(settings.region, settings.group, [stream], limit=limit, newest_first=True):
            events.append({"container": name, "at": event.ts / 1000, "message": event.message, "order": (event.ts, event.position)})
    events.sort(key=lambda e: e.pop("order"))
    return {
        "task": task.arn,
        "taskId": task.id,
        "logged": bool(sources),
        "streams": [{"container": name, "group": settings.group, "stream": stream} for settings, stream, name in sources],
        "events": events[-limit:],
        "note": "" if sources else "No container of this task logs with the awslogs driver: its output is in `docker logs` on its host.",
    }
