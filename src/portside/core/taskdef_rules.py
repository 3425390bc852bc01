"""Value rules of RegisterTaskDefinition: what ECS refuses once the JSON types are right.

Each ``check_*`` function raises ``ClientException`` at the first violation it finds and
returns nothing otherwise. Types have already been checked (``taskdef_schema``), so the
code here may assume ``int`` where the model says Integer.

Messages: where ECS's own text is known (spec ``ecs.md`` §2.6) it is used verbatim; the
others name the field path and the rule, e.g.
``containerDefinitions[1].portMappings[0].hostPort must be between 0 and 65535 (got 70000)``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from portside.errors import ClientException

Doc = Mapping[str, Any]

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
PORT_NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_-]{0,63}")
DIGEST_RE = re.compile(r"sha256:[A-Fa-f0-9]{64}")
PORT_RANGE_RE = re.compile(r"(\d+)-(\d+)")
CPU_UNITS_RE = re.compile(r"\s*(\d+)\s*")
CPU_VCPU_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*vcpus?\s*", re.IGNORECASE)
MEMORY_MIB_RE = re.compile(r"\s*(\d+)\s*")
MEMORY_GB_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*gb\s*", re.IGNORECASE)

MAX_CONTAINERS = 10
MAX_NAME_LENGTH = 255
MAX_IMAGE_LENGTH = 255
MIN_CONTAINER_MEMORY_MIB = 6  # Docker >= 20.10 refuses less ([model] ContainerDefinition.memory)
MIN_TASK_CPU_UNITS = 128
MAX_TASK_CPU_UNITS = 196608
MAX_PORT = 65535
MAX_PORT_RANGES = 100
MAX_TIMEOUT_S = 120
MAX_PLACEMENT_CONSTRAINTS = 10
MAX_TAGS = 50
HEALTH_CHECK_BOUNDS = {"interval": (5, 300), "timeout": (2, 60), "retries": (1, 10), "startPeriod": (0, 300)}
HEALTH_CHECK_KINDS = ("CMD", "CMD-SHELL", "NONE")
OUTPUT_ONLY_FIELDS = (
    "taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
    "registeredAt", "registeredBy", "deregisteredAt", "deleteRequestedAt",
)  # fmt: skip

INVALID_TASK_CPU = (
    "Invalid 'cpu' setting for task. For more information, see the Troubleshooting section of the "
    "Amazon ECS Developer Guide."
)
# ECS's text for memory is not recorded; this mirrors the verified cpu message.
INVALID_TASK_MEMORY = (
    "Invalid 'memory' setting for task. For more information, see the Troubleshooting section of the "
    "Amazon ECS Developer Guide."
)


# ---- task size -----------------------------------------------------------------------


def parse_task_cpu(value: str) -> int:
    """Task-level ``cpu`` ("1024", "1 vCPU", "0.5 vcpu") in CPU units, 128..196608."""
    units = _scaled(value, CPU_UNITS_RE, CPU_VCPU_RE, 1024)
    if units is None or not MIN_TASK_CPU_UNITS <= units <= MAX_TASK_CPU_UNITS:
        raise ClientException(INVALID_TASK_CPU)
    return units


def parse_task_memory(value: str) -> int:
    """Task-level ``memory`` ("512", "1GB", "0.5 GB") in MiB, at least 1."""
    mib = _scaled(value, MEMORY_MIB_RE, MEMORY_GB_RE, 1024)
    if mib is None or mib < 1:
        raise ClientException(INVALID_TASK_MEMORY)
    return mib


def _scaled(value: str, plain: re.Pattern[str], scaled: re.Pattern[str], factor: int) -> int | None:
    if m := plain.fullmatch(value):
        return int(m.group(1))
    if m := scaled.fullmatch(value):
        try:
            amount = Decimal(m.group(1)) * factor
        except InvalidOperation:  # pragma: no cover - the regex admits only decimals
            return None
        return int(amount) if amount == amount.to_integral_value() else None
    return None


# ---- task level ----------------------------------------------------------------------


def check_not_output(request: Doc) -> None:
    for key in OUTPUT_ONLY_FIELDS:
        if key in request:
            raise ClientException(
                f"{key} is set by ECS and is not a RegisterTaskDefinition parameter; remove it "
                "(and any other DescribeTaskDefinition output fields) before registering"
            )


def check_family(family: str) -> None:
    if not family:
        raise ClientException("family must not be empty")
    if len(family) > MAX_NAME_LENGTH:
        raise ClientException(f"family must be at most {MAX_NAME_LENGTH} characters (got {len(family)})")
    if not NAME_RE.fullmatch(family):
        raise ClientException(f"family '{family}' may contain only letters, numbers, underscores and hyphens")


def check_compatibilities(request: Doc, network_mode: str) -> None:
    if "FARGATE" not in (request.get("requiresCompatibilities") or []):
        return
    if network_mode != "awsvpc":
        raise ClientException(
            f"requiresCompatibilities includes FARGATE, which needs networkMode=awsvpc (got {network_mode})"
        )
    for key in ("cpu", "memory"):
        if request.get(key) is None:
            raise ClientException(f"requiresCompatibilities includes FARGATE, which needs a task-level {key}")
    if request.get("pidMode") == "host":  # ECS's own words (ClientException)
        raise ClientException(
            "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'."
        )


def check_volumes(volumes: Sequence[Doc]) -> None:
    seen: dict[str, int] = {}
    for k, volume in enumerate(volumes):
        name = volume.get("name")
        if name is None:
            raise ClientException(f"volumes[{k}].name is required")
        if not NAME_RE.fullmatch(name):
            raise ClientException(
                f"volumes[{k}].name '{name}' must be 1-255 letters, numbers, underscores and hyphens"
            )
        if name in seen:
            raise ClientException(f"volumes[{k}].name '{name}' is already used by volumes[{seen[name]}]")
        seen[name] = k


def check_placement_constraints(constraints: Sequence[Doc]) -> None:
    if len(constraints) > MAX_PLACEMENT_CONSTRAINTS:
        raise ClientException(
            f"placementConstraints may hold at most {MAX_PLACEMENT_CONSTRAINTS} constraints "
            f"(got {len(constraints)})"
        )
    for k, constraint in enumerate(constraints):
        if constraint.get("type") is None:
            raise ClientException(f"placementConstraints[{k}].type is required (memberOf)")
        if not constraint.get("expression"):
            raise ClientException(f"placementConstraints[{k}].expression is required for type memberOf")


def check_tags(tags: Sequence[Doc]) -> None:
    if len(tags) > MAX_TAGS:
        raise ClientException(f"tags may hold at most {MAX_TAGS} tags (got {len(tags)})")
    for k, tag in enumerate(tags):
        if not tag.get("key"):
            raise ClientException(f"tags[{k}].key is required")


# ---- one container -------------------------------------------------------------------


def check_container_count(containers: Sequence[Doc]) -> None:
    if not containers:
        raise ClientException("containerDefinitions must contain at least one container")
    if len(containers) > MAX_CONTAINERS:
        raise ClientException(
            f"containerDefinitions may contain at most {MAX_CONTAINERS} containers (got {len(containers)})"
        )


def check_container_names(containers: Sequence[Doc]) -> None:
    seen: dict[str, int] = {}
    for i, container in enumerate(containers):
        path = f"containerDefinitions[{i}].name"
        name = container.get("name")
        if name is None:
            raise ClientException(f"{path} is required")
        if not name:
            raise ClientException(f"{path} must not be empty")
        if len(name) > MAX_NAME_LENGTH:
            raise ClientException(f"{path} must be at most {MAX_NAME_LENGTH} characters (got {len(name)})")
        if not NAME_RE.fullmatch(name):
            raise ClientException(
                f"{path} '{name}' may contain only letters, numbers, underscores and hyphens"
            )
        if name in seen:
            raise ClientException(f"{path} '{name}' is already used by containerDefinitions[{seen[name]}]")
        seen[name] = i


def check_image(container: Doc, p: str) -> None:
    image = container.get("image")
    if image is None:
        raise ClientException(f"{p}.image is required")
    if not image:
        raise ClientException(f"{p}.image must not be empty")
    if any(ch.isspace() for ch in image):
        raise ClientException(f"{p}.image '{image}' must not contain whitespace")
    repository, at, digest = image.partition("@")
    if len(repository) > MAX_IMAGE_LENGTH:
        raise ClientException(
            f"{p}.image must be at most {MAX_IMAGE_LENGTH} characters before any digest "
            f"(got {len(repository)})"
        )
    if at and not DIGEST_RE.fullmatch(digest):
        raise ClientException(f"{p}.image digest '{digest}' must be sha256: followed by 64 hex digits")


def check_container_memory(container: Doc, p: str, task_memory: int | None) -> None:
    memory, reservation = container.get("memory"), container.get("memoryReservation")
    if memory is None and reservation is None and task_memory is None:
        raise ClientException(
            f"Invalid setting for container '{container['name']}'. "
            "At least one of 'memory' or 'memoryReservation' must be specified."
        )
    if memory is not None and memory < MIN_CONTAINER_MEMORY_MIB:
        raise ClientException(f"{p}.memory must be at least {MIN_CONTAINER_MEMORY_MIB} MiB (got {memory})")
    if reservation is not None and reservation < 1:
        raise ClientException(f"{p}.memoryReservation must be a positive integer (got {reservation})")
    if memory is not None and reservation is not None and memory < reservation:
        raise ClientException(
            f"{p}.memory ({memory}) must be greater than or equal to {p}.memoryReservation ({reservation})"
        )


def check_container_scalars(container: Doc, p: str) -> None:
    cpu = container.get("cpu")
    if cpu is not None and cpu < 0:
        raise ClientException(f"{p}.cpu must not be negative (got {cpu})")
    for key in ("startTimeout", "stopTimeout"):
        seconds = container.get(key)
        if seconds is not None and not 0 <= seconds <= MAX_TIMEOUT_S:
            raise ClientException(f"{p}.{key} must be between 0 and {MAX_TIMEOUT_S} seconds (got {seconds})")


def check_health_check(health: Doc, p: str) -> None:
    command = health["command"]
    if not command:
        raise ClientException(f"{p}.command must not be empty")
    if command[0] not in HEALTH_CHECK_KINDS:
        raise ClientException(f"{p}.command must start with CMD, CMD-SHELL or NONE (got '{command[0]}')")
    if command[0] != "NONE" and len(command) < 2:
        raise ClientException(f"{p}.command must give the command to run after '{command[0]}'")
    for key, (low, high) in HEALTH_CHECK_BOUNDS.items():
        value = health.get(key)
        if value is not None and not low <= value <= high:
            raise ClientException(f"{p}.{key} must be between {low} and {high} (got {value})")


def check_ulimits(ulimits: Sequence[Doc], p: str) -> None:
    seen: set[str] = set()
    for j, ulimit in enumerate(ulimits):
        if ulimit["name"] in seen:
            raise ClientException(f"{p}[{j}].name '{ulimit['name']}' is given twice")
        seen.add(ulimit["name"])
        if ulimit["softLimit"] > ulimit["hardLimit"]:
            raise ClientException(
                f"{p}[{j}].softLimit ({ulimit['softLimit']}) "
                f"must not exceed hardLimit ({ulimit['hardLimit']})"
            )


def check_extra_hosts(hosts: Sequence[Doc], p: str, network_mode: str) -> None:
    if hosts and network_mode == "awsvpc":
        raise ClientException(f"{p} is not supported when networkMode=awsvpc")
    for j, host in enumerate(hosts):
        if not host["hostname"]:
            raise ClientException(f"{p}[{j}].hostname must not be empty")
        try:
            ipaddress.ip_address(host["ipAddress"])
        except ValueError:
            raise ClientException(f"{p}[{j}].ipAddress '{host['ipAddress']}' is not an IP address") from None


def check_mount_points(container: Doc, p: str, volume_names: set[str]) -> None:
    for j, mount in enumerate(container.get("mountPoints") or []):
        q = f"{p}.mountPoints[{j}]"
        source = mount.get("sourceVolume")
        if source is None:
            raise ClientException(f"{q}.sourceVolume is required")
        if source not in volume_names:
            known = ", ".join(sorted(volume_names)) or "none"
            raise ClientException(
                f"{q}.sourceVolume '{source}' names no volume of this task (volumes: {known})"
            )
        if not mount.get("containerPath"):
            raise ClientException(f"{q}.containerPath is required")
