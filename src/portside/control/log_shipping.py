"""``PortsideAgent.PutContainerLogs``: an agent ships what an ``awslogs`` container wrote.

The agent names only the task, the container and its runtime id; where the events go (group,
region, stream) comes from the task's stored definition, never from the request, so an agent's
key can write only into the streams of tasks placed on the instance it names. The stream is
created on the first call (the agent makes one with no events before the container starts); the
group too when the definition says ``awslogs-create-group: true``, else a missing group answers
``ResourceNotFoundException`` and the agent fails the container's start with Docker's reason.

Each event carries the agent's key (``core/log_events.py``); a key the stream holds already is
skipped, so a batch sent again after a lost answer is stored once. A batch is bounded as
PutLogEvents is (10,000 events, 1 MiB, 256 KiB less 26 bytes per message).
"""

from __future__ import annotations

import re
from typing import Any

from portside.control import task_definitions
from portside.control.log_groups import now_ms
from portside.control.plane import ControlPlane
from portside.control.store.logs import NewEvent
from portside.core import awslogs
from portside.core.log_events import MAX_MESSAGE_BYTES, REPLACEMENT, batch_problem
from portside.errors import InvalidParameterException, NotFoundError

_KEY = re.compile(r"^\d{1,20}:\d{1,9}$")
_RUNTIME_ID = re.compile(r"^[0-9a-f]{12,64}$")


def put_container_logs(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arn = params.get("task")
    stored = plane.store.get_task(arn) if isinstance(arn, str) else None
    if stored is None or stored.region != region:
        raise InvalidParameterException(f"task: {arn!r} was not found.")
    if params.get("containerInstance") != stored.container_instance_arn:
        raise InvalidParameterException(f"containerInstance: task {stored.id} is not placed on {params.get('containerInstance')!r}.")
    body = plane.store.get_task_definition(stored.region, stored.family, stored.revision)
    content = task_definitions.public(body) if body is not None else {}
    name = params.get("containerName")
    definition = next((d for d in content.get("containerDefinitions", []) if d.get("name") == name), None)
    settings = awslogs.awslogs_of(definition, region) if definition is not None else None
    if settings is None:
        raise InvalidParameterException(f"containerName: {name!r} of task {stored.id} does not log with awslogs.")
    runtime_id = params.get("runtimeId")
    if runtime_id is not None and not (isinstance(runtime_id, str) and _RUNTIME_ID.match(runtime_id)):
        raise InvalidParameterException("runtimeId: a Docker container id (12 to 64 hex digits) is expected.")
    stream = awslogs.stream_name(settings, str(name), stored.id, runtime_id if isinstance(runtime_id, str) and runtime_id else None)
    if not stream:
        raise InvalidParameterException("runtimeId: needed to name the stream when awslogs-stream-prefix is not set.")
    events = _events(params.get("events"))
    now = now_ms(plane)
    plane.saw_agent(stored.container_instance_arn)
    with plane.store.transaction():
        if plane.store.get_log_group(settings.region, settings.group) is None:
            if not settings.create_group:
                raise NotFoundError("The specified log group does not exist.", "ResourceNotFoundException")
            plane.store.add_log_group(settings.region, settings.group, now)
        plane.store.add_log_stream(settings.region, settings.group, stream, now)
        added = plane.store.add_log_events(settings.region, settings.group, stream, events, now)
    return {"logGroupName": settings.group, "logStreamName": stream, "accepted": added}


def _events(raw: Any) -> list[NewEvent]:
    if not isinstance(raw, list):
        raise InvalidParameterException("events: a list of {key, timestamp, message} is expected.")
    messages = []
    events = []
    for i, event in enumerate(raw):
        if not isinstance(event, dict):
            raise InvalidParameterException(f"events[{i}]: an object is expected.")
        key, ts, message = event.get("key"), event.get("timestamp"), event.get("message")
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidParameterException(f"events[{i}].key: must be <nanoseconds>:<index>.")
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
            raise InvalidParameterException(f"events[{i}].timestamp: must be milliseconds since the epoch.")
        if not isinstance(message, str) or len(message.encode()) > MAX_MESSAGE_BYTES:
            raise InvalidParameterException(f"events[{i}].message: text of at most {MAX_MESSAGE_BYTES} bytes.")
        messages.append(message)
        events.append(NewEvent(key, ts, message.replace("\x00", REPLACEMENT)))
    problem = batch_problem(messages)
    if problem:
        raise InvalidParameterException(f"events: {problem}.")
    return events
