"""The ``awslogs`` log driver of a container definition, as portside applies it.

Theory of operation: ECS hands ``logConfiguration.options`` to Docker's awslogs driver, which
calls CloudWatch Logs itself. portside must not let Docker do that (it would call AWS), so a
container with ``awslogs`` logs to Docker's ``local`` driver, its agent follows that output and
ships it to the control plane, which keeps it in the CloudWatch Logs store of the group's region.

``awslogs_of(definition, region)`` reads the options into an ``AwsLogs``;
``problems(at, definition)`` names every option portside would not apply as asked (RunTask
refuses the task, naming it). ``stream_name`` forms the stream as ECS does:
``prefix/container-name/task-id``, or the Docker container id without a prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DRIVER = "awslogs"
GROUP = "awslogs-group"
REGION = "awslogs-region"
STREAM_PREFIX = "awslogs-stream-prefix"
CREATE_GROUP = "awslogs-create-group"
MODE = "mode"
MAX_BUFFER_SIZE = "max-buffer-size"
#: Options portside applies (mode and max-buffer-size: the agent never blocks a container's
#: output, whatever the mode; the local driver's files are the buffer).
APPLIED = (GROUP, REGION, STREAM_PREFIX, CREATE_GROUP, MODE, MAX_BUFFER_SIZE)
#: Options Docker's driver knows that portside does not implement.
REFUSED = {
    "awslogs-datetime-format": "multi-line events by a datetime format are not implemented",
    "awslogs-multiline-pattern": "multi-line events by a pattern are not implemented",
    "awslogs-endpoint": "logs always go to this control plane",
    "awslogs-credentials-endpoint": "logs always go to this control plane",
    "awslogs-format": "only plain-text events are implemented",
    "tag": "stream names are formed as ECS forms them",
}
GROUP_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
STREAM_NAME = re.compile(r"^[^:*]{1,512}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True)
class AwsLogs:
    group: str
    region: str
    stream_prefix: str | None
    create_group: bool


def awslogs_of(definition: Mapping[str, Any], region: str) -> AwsLogs | None:
    """The container's awslogs settings (None when it does not log with awslogs)."""
    config = definition.get("logConfiguration") or {}
    if config.get("logDriver") != DRIVER:
        return None
    options = config.get("options") or {}
    return AwsLogs(
        group=str(options.get(GROUP, "")),
        region=str(options.get(REGION) or region),
        stream_prefix=options.get(STREAM_PREFIX) or None,
        create_group=str(options.get(CREATE_GROUP, "")).lower() == "true",
    )


def problems(at: str, definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, rule) for each awslogs option of the container portside would not apply as asked."""
    config = definition.get("logConfiguration") or {}
    if config.get("logDriver") != DRIVER:
        return
    options = config.get("options") or {}
    where = f"{at}.logConfiguration.options"
    group = options.get(GROUP)
    if not group:
        yield f"{where}.{GROUP}", "the awslogs driver needs a log group"
    elif not GROUP_NAME.match(str(group)):
        yield f"{where}.{GROUP}", "must be 1 to 512 of a-z, A-Z, 0-9, '_', '-', '/', '.', '#'"
    region = options.get(REGION)
    if region is not None and not REGION_NAME.match(str(region)):
        yield f"{where}.{REGION}", f"is not a region name (got {region!r})"
    prefix = options.get(STREAM_PREFIX)
    if prefix is not None and not STREAM_NAME.match(f"{prefix}/x/y"):
        yield f"{where}.{STREAM_PREFIX}", "must not hold ':' or '*' (it begins the stream name)"
    create = options.get(CREATE_GROUP)
    if create is not None and str(create).lower() not in ("true", "false"):
        yield f"{where}.{CREATE_GROUP}", f"must be true or false (got {create!r})"
    mode = options.get(MODE)
    if mode is not None and mode not in ("blocking", "non-blocking"):
        yield f"{where}.{MODE}", f"must be blocking or non-blocking (got {mode!r})"
    for key in options:
        if key in REFUSED:
            yield f"{where}.{key}", REFUSED[key]
        elif key not in APPLIED:
            yield f"{where}.{key}", f"not an option of the awslogs driver portside applies ({', '.join(APPLIED)})"


def stream_name(settings: AwsLogs, container_name: str, task_id: str, runtime_id: str | None) -> str | None:
    """The stream ECS names: ``prefix/container/task-id``; without a prefix Docker's container id."""
    if settings.stream_prefix:
        return f"{settings.stream_prefix}/{container_name}/{task_id}"
    return runtime_id
