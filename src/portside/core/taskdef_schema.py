"""The JSON shape of a RegisterTaskDefinition request, and the type check over it.

botocore refuses a request of the wrong shape before it leaves the client, but a raw
HTTP client can send anything, so the API must check types itself. This module is that
check: a table of the request's members (transcribed from botocore's ECS model,
``RegisterTaskDefinitionRequest``; ``tests/unit/test_taskdef.py`` compares the two) and
one recursive walk that raises ``ClientException`` naming the first field of the wrong
type, e.g. ``containerDefinitions[0].memory must be an integer``.

Conventions:

- ``null`` means "not given", as in AWS's JSON protocol: a member whose value is ``None``
  is skipped here and dropped from the stored content by ``core.taskdef``.
- Members the table does not know (a newer ECS feature) are accepted unchecked and kept.
- Value rules (ranges, names, cross references) are not here; see ``taskdef_rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portside.errors import ClientException

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Str:
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Int:
    pass


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class ListOf:
    item: Spec


@dataclass(frozen=True)
class MapOf:
    value: Spec


@dataclass(frozen=True)
class Struct:
    members: Mapping[str, Spec]
    required: tuple[str, ...] = field(default=())


Spec = Str | Int | Bool | ListOf | MapOf | Struct

STR = Str()
INT = Int()
BOOL = Bool()
STRINGS = ListOf(STR)
STRING_MAP = MapOf(STR)

NETWORK_MODES = ("bridge", "host", "awsvpc", "none")
PROTOCOLS = ("tcp", "udp")
CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
ULIMIT_NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip
LOG_DRIVERS = ("json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "awsfirelens")
COMPATIBILITIES = ("EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES")

SECRET = Struct({"name": STR, "valueFrom": STR}, required=("name", "valueFrom"))

PORT_MAPPING = Struct(
    {
        "containerPort": INT,
        "hostPort": INT,
        "protocol": Str(PROTOCOLS),
        "name": STR,
        "appProtocol": Str(("http", "http2", "grpc")),
        "containerPortRange": STR,
    }
)

HEALTH_CHECK = Struct(
    {"command": STRINGS, "interval": INT, "timeout": INT, "retries": INT, "startPeriod": INT},
    required=("command",),
)

LINUX_PARAMETERS = Struct(
    {
        "capabilities": Struct({"add": STRINGS, "drop": STRINGS}),
        "devices": ListOf(
            Struct(
                {
                    "hostPath": STR,
                    "containerPath": STR,
                    "permissions": ListOf(Str(("read", "write", "mknod"))),
                },
                required=("hostPath",),
            )
        ),
        "initProcessEnabled": BOOL,
        "sharedMemorySize": INT,
        "tmpfs": ListOf(
            Struct(
                {"containerPath": STR, "size": INT, "mountOptions": STRINGS},
                required=("containerPath", "size"),
            )
        ),
        "maxSwap": INT,
        "swappiness": INT,
    }
)

CONTAINER_DEFINITION = Struct(
    {
        "name": STR,
        "image": STR,
        "repositoryCredentials": Struct({"credentialsParameter": STR}, required=("credentialsParameter",)),
        "cpu": INT,
        "memory": INT,
        "memoryReservation": INT,
        "links": STRINGS,
        "portMappings": ListOf(PORT_MAPPING),
        "essential": BOOL,
        "restartPolicy": Struct(
            {"enabled": BOOL, "ignoredExitCodes": ListOf(INT), "restartAttemptPeriod": INT},
            required=("enabled",),
        ),
        "entryPoint": STRINGS,
        "command": STRINGS,
        "environment": ListOf(Struct({"name": STR, "value": STR})),
        "environmentFiles": ListOf(Struct({"value": STR, "type": Str(("s3",))}, required=("value", "type"))),
        "mountPoints": ListOf(Struct({"sourceVolume": STR, "containerPath": STR, "readOnly": BOOL})),
        "volumesFrom": ListOf(Struct({"sourceContainer": STR, "readOnly": BOOL})),
        "linuxParameters": LINUX_PARAMETERS,
        "secrets": ListOf(SECRET),
        "dependsOn": ListOf(
            Struct(
                {"containerName": STR, "condition": Str(CONDITIONS)}, required=("containerName", "condition")
            )
        ),
        "startTimeout": INT,
        "stopTimeout": INT,
        "versionConsistency": Str(("enabled", "disabled")),
        "hostname": STR,
        "user": STR,
        "workingDirectory": STR,
        "disableNetworking": BOOL,
        "privileged": BOOL,
        "readonlyRootFilesystem": BOOL,
        "dnsServers": STRINGS,
        "dnsSearchDomains": STRINGS,
        "extraHosts": ListOf(Struct({"hostname": STR, "ipAddress": STR}, required=("hostname", "ipAddress"))),
        "dockerSecurityOptions": STRINGS,
        "interactive": BOOL,
        "pseudoTerminal": BOOL,
        "dockerLabels": STRING_MAP,
        "ulimits": ListOf(
            Struct(
                {"name": Str(ULIMIT_NAMES), "softLimit": INT, "hardLimit": INT},
                required=("name", "softLimit", "hardLimit"),
            )
        ),
        "logConfiguration": Struct(
            {"logDriver": Str(LOG_DRIVERS), "options": STRING_MAP, "secretOptions": ListOf(SECRET)},
            required=("logDriver",),
        ),
        "healthCheck": HEALTH_CHECK,
        "systemControls": ListOf(Struct({"namespace": STR, "value": STR})),
        "resourceRequirements": ListOf(
            Struct({"value": STR, "type": Str(("GPU", "InferenceAccelerator"))}, required=("value", "type"))
        ),
        "firelensConfiguration": Struct(
            {"type": Str(("fluentd", "fluentbit")), "options": STRING_MAP}, required=("type",)
        ),
        "credentialSpecs": STRINGS,
    }
)

VOLUME = Struct(
    {
        "name": STR,
        "host": Struct({"sourcePath": STR}),
        "dockerVolumeConfiguration": Struct(
            {
                "scope": Str(("task", "shared")),
                "autoprovision": BOOL,
                "driver": STR,
                "driverOpts": STRING_MAP,
                "labels": STRING_MAP,
            }
        ),
        "efsVolumeConfiguration": Struct(
            {
                "fileSystemId": STR,
                "rootDirectory": STR,
                "transitEncryption": Str(("ENABLED", "DISABLED")),
                "transitEncryptionPort": INT,
                "authorizationConfig": Struct({"accessPointId": STR, "iam": Str(("ENABLED", "DISABLED"))}),
            },
            required=("fileSystemId",),
        ),
        "fsxWindowsFileServerVolumeConfiguration": Struct(
            {
                "fileSystemId": STR,
                "rootDirectory": STR,
                "authorizationConfig": Struct(
                    {"credentialsParameter": STR, "domain": STR}, required=("credentialsParameter", "domain")
                ),
            },
            required=("fileSystemId", "rootDirectory", "authorizationConfig"),
        ),
        "s3filesVolumeConfiguration": Struct(
            {"fileSystemArn": STR, "rootDirectory": STR, "transitEncryptionPort": INT, "accessPointArn": STR},
            required=("fileSystemArn",),
        ),
        "configuredAtLaunch": BOOL,
    }
)

REGISTER_TASK_DEFINITION = Struct(
    {
        "family": STR,
        "taskRoleArn": STR,
        "executionRoleArn": STR,
        "networkMode": Str(NETWORK_MODES),
        "containerDefinitions": ListOf(CONTAINER_DEFINITION),
        "volumes": ListOf(VOLUME),
        "placementConstraints": ListOf(Struct({"type": Str(("memberOf",)), "expression": STR})),
        "requiresCompatibilities": ListOf(Str(COMPATIBILITIES)),
        "cpu": STR,
        "memory": STR,
        "tags": ListOf(Struct({"key": STR, "value": STR})),
        "pidMode": Str(("host", "task")),
        "ipcMode": Str(("host", "task", "none")),
        "proxyConfiguration": Struct(
            {
                "type": Str(("APPMESH",)),
                "containerName": STR,
                "properties": ListOf(Struct({"name": STR, "value": STR})),
            },
            required=("containerName",),
        ),
        "inferenceAccelerators": ListOf(
            Struct({"deviceName": STR, "deviceType": STR}, required=("deviceName", "deviceType"))
        ),
        "ephemeralStorage": Struct({"sizeInGiB": INT}, required=("sizeInGiB",)),
        "runtimePlatform": Struct(
            {"cpuArchitecture": Str(("X86_64", "ARM64")), "operatingSystemFamily": STR}
        ),
        "enableFaultInjection": BOOL,
    },
    required=("family", "containerDefinitions"),
)


def check_types(request: Mapping[str, Any]) -> None:
    """Raise ``ClientException`` at the first member of ``request`` whose JSON type is wrong."""
    _check(request, REGISTER_TASK_DEFINITION, "")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(value: Any, spec: Spec, path: str) -> None:
    if isinstance(spec, Str):
        if not isinstance(value, str):
            raise ClientException(f"{path} must be a string")
        if spec.enum is not None and value not in spec.enum:
            raise ClientException(f"{path} must be one of {', '.join(spec.enum)} (got '{value}')")
    elif isinstance(spec, Int):
        # bool is an int in Python but not in JSON; 512.0 is not an integer either.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ClientException(f"{path} must be an integer")
        if not INT32_MIN <= value <= INT32_MAX:
            raise ClientException(f"{path} must be a 32-bit integer (got {value})")
    elif isinstance(spec, Bool):
        if not isinstance(value, bool):
            raise ClientException(f"{path} must be a boolean")
    elif isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise ClientException(f"{path} must be a list")
        for i, item in enumerate(value):
            if item is None:
                raise ClientException(f"{path}[{i}] must not be null")
            _check(item, spec.item, f"{path}[{i}]")
    elif isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise ClientException(f"{path} must be an object")
        for key, item in value.items():
            if item is not None:
                _check(item, spec.value, _join(path, key))
    else:
        if not isinstance(value, dict):
            raise ClientException(f"{path or 'request'} must be an object")
        for name in spec.required:
            if value.get(name) is None:
                raise ClientException(f"{_join(path, name)} is required")
        for key, item in value.items():
            member = spec.members.get(key)
            if member is not None and item is not None:
                _check(item, member, _join(path, key))
