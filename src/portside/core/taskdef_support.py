"""Which task definition fields portside applies, which it refuses to run, which it ignores.

Theory of operation: every member of ECS's ``RegisterTaskDefinition`` request and of its
``ContainerDefinition``, ``LinuxParameters``, ``Volume`` and ``LogConfiguration`` shapes
has one row in ``FIELDS`` saying what portside does with it when a task runs:

- ``applied``: it reaches Docker (or placement, or the agent) as ECS would apply it;
- ``refused``: it would change what runs and portside cannot apply it (no SSM, no EFS,
  no App Mesh here), so RunTask, CreateService and UpdateService refuse a task that uses
  it, naming the field, rather than run something other than what was asked;
- ``ignored``: it does not change what runs on this host (an IAM role with no AWS to call,
  a Fargate-only size, a hint), so it is stored, described back, and left alone.

Registration accepts every field regardless, as ECS does. ``check_supported(content)`` is
the run-time refusal: pure, over the stored content. A few fields are refused only for some
values (``logConfiguration`` with ``awslogs``, ``restartPolicy`` when enabled, ``maxSwap``
without a hard memory limit); those rules sit beside the table in ``_value_rules``.

``docs/task-definitions.md`` carries the same table for readers; ``tests/unit/
test_taskdef_support.py`` checks that the docs, this table and botocore's model agree, so a
field ECS adds cannot go unlisted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from portside.core import awslogs
from portside.errors import InvalidParameterException


class Support(Enum):
    APPLIED = "applied"
    REFUSED = "refused"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Field:
    support: Support
    # What portside does with it (applied), or why it refuses or ignores it.
    note: str


A, R, I = Support.APPLIED, Support.REFUSED, Support.IGNORED

# Task-level members: "family"; container members: "containerDefinitions[].image";
# nested shapes: "containerDefinitions[].linuxParameters.tmpfs", "volumes[].host".
TASK = ""
CONTAINER = "containerDefinitions[]."
LINUX = "containerDefinitions[].linuxParameters."
LOG = "containerDefinitions[].logConfiguration."
VOLUME = "volumes[]."

# Docker's own log drivers that ECS accepts, and awslogs (the agent ships to the control plane's
# CloudWatch Logs, core/awslogs.py); awsfirelens needs ECS's FireLens.
APPLIED_LOG_DRIVERS = ("json-file", "syslog", "journald", "gelf", "fluentd", "splunk", "awslogs")

# Sysctls of the IPC namespace (runc's list); the network namespace's are net.*.
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")  # fmt: skip

# Value ranges of linuxParameters that Docker would otherwise refuse only when the container starts.
LINUX_RANGES = (("maxSwap", 0, 2**31 - 1), ("swappiness", 0, 100), ("sharedMemorySize", 1, 2**31 - 1))

FIELDS: dict[str, Field] = {
    # -- the task
    "family": Field(A, "names the task definition"),
    "taskRoleArn": Field(I, "no AWS credentials endpoint here: the containers get no role credentials"),
    "executionRoleArn": Field(
        I, "used by ECS to pull images and read secrets; portside pulls as the host does"
    ),
    "networkMode": Field(A, "bridge, host, awsvpc or none (see Network modes)"),
    "containerDefinitions": Field(A, "one Docker container each"),
    "volumes": Field(A, "bind mounts and Docker volumes (rows below)"),
    "placementConstraints": Field(A, "memberOf expressions are honoured by placement"),
    "requiresCompatibilities": Field(I, "a launch-type declaration; every task runs on this host's Docker"),
    "cpu": Field(A, "what the task reserves on the host"),
    "memory": Field(A, "what the task reserves on the host"),
    "tags": Field(A, "stored beside the task definition"),
    "pidMode": Field(
        A,
        "host: Docker's host PID namespace (needs --allow-host-namespaces); task: one namespace for the task",
    ),
    "ipcMode": Field(A, "host (needs --allow-host-namespaces), task (one namespace for the task) or none"),
    "proxyConfiguration": Field(R, "App Mesh proxy wiring is not implemented"),
    "inferenceAccelerators": Field(R, "no Elastic Inference here"),
    "ephemeralStorage": Field(I, "a Fargate-only size; containers use the host's Docker storage"),
    "runtimePlatform": Field(I, "a placement hint; the host's architecture decides which images run"),
    "enableFaultInjection": Field(I, "ECS fault injection endpoints are not served"),
    # -- each container
    CONTAINER + "name": Field(A, "Docker name ecs-FAMILY-REVISION-NAME-TASKID and the container's label"),
    CONTAINER + "image": Field(A, "pulled per --image-pull-behavior"),
    CONTAINER + "repositoryCredentials": Field(
        R, "private registry credentials are not fetched from Secrets Manager (images come from the host's engine)"
    ),
    CONTAINER + "cpu": Field(A, "CPU shares (0 and 1 become 2)"),
    CONTAINER + "memory": Field(A, "hard memory limit (MiB)"),
    CONTAINER + "memoryReservation": Field(A, "soft memory limit (MiB)"),
    CONTAINER + "links": Field(A, "Docker links (bridge mode)"),
    CONTAINER + "portMappings": Field(A, "published ports; dynamic host ports from the range"),
    CONTAINER + "essential": Field(A, "an essential container's exit stops the task"),
    CONTAINER + "restartPolicy": Field(
        R, "refused when enabled: in-place restarts are not implemented; enabled: false is accepted"
    ),
    CONTAINER + "entryPoint": Field(A, "Entrypoint"),
    CONTAINER + "command": Field(A, "Cmd"),
    CONTAINER + "environment": Field(A, "Env"),
    CONTAINER + "environmentFiles": Field(R, "S3 environment files cannot be fetched here"),
    CONTAINER + "mountPoints": Field(A, "binds of the task's volumes"),
    CONTAINER + "volumesFrom": Field(A, "VolumesFrom"),
    CONTAINER + "linuxParameters": Field(A, "rows below"),
    CONTAINER + "secrets": Field(
        A, "Env, read from portside's SSM Parameter Store or Secrets Manager when the task starts (docs/secrets.md)"
    ),
    CONTAINER + "dependsOn": Field(A, "start order and waiting"),
    CONTAINER + "startTimeout": Field(A, "how long dependants wait"),
    CONTAINER + "stopTimeout": Field(A, "SIGTERM to SIGKILL"),
    CONTAINER + "versionConsistency": Field(
        I, "the image is resolved by this host's Docker when the task starts"
    ),
    CONTAINER + "hostname": Field(A, "Hostname (not with host or awsvpc networking, as on ECS)"),
    CONTAINER + "user": Field(A, "User"),
    CONTAINER + "workingDirectory": Field(A, "WorkingDir"),
    CONTAINER + "disableNetworking": Field(A, "NetworkDisabled; not with portMappings or awsvpc"),
    CONTAINER + "privileged": Field(A, "Privileged (needs --allow-privileged)"),
    CONTAINER + "readonlyRootFilesystem": Field(A, "ReadonlyRootfs"),
    CONTAINER + "dnsServers": Field(A, "Dns"),
    CONTAINER + "dnsSearchDomains": Field(A, "DnsSearch"),
    CONTAINER + "extraHosts": Field(A, "ExtraHosts"),
    CONTAINER + "dockerSecurityOptions": Field(
        A, "SecurityOpt; anything but no-new-privileges needs --allow-privileged"
    ),
    CONTAINER + "interactive": Field(A, "OpenStdin"),
    CONTAINER + "pseudoTerminal": Field(A, "Tty"),
    CONTAINER + "dockerLabels": Field(A, "Labels"),
    CONTAINER + "ulimits": Field(A, "Ulimits"),
    CONTAINER + "logConfiguration": Field(A, "LogConfig (rows below)"),
    CONTAINER + "healthCheck": Field(A, "a Docker health check; ECS health status"),
    CONTAINER + "systemControls": Field(A, "Sysctls; net.* refused with networkMode host, IPC ones with ipcMode host"),
    CONTAINER + "resourceRequirements": Field(R, "GPUs and inference accelerators are not scheduled here"),
    CONTAINER + "firelensConfiguration": Field(R, "FireLens log routing is not implemented"),
    CONTAINER + "credentialSpecs": Field(R, "Active Directory credential specs are not available"),
    # -- linuxParameters
    LINUX + "capabilities": Field(A, "CapAdd (needs --allow-capabilities) and CapDrop"),
    LINUX + "devices": Field(A, "Devices, permissions read/write/mknod as r/w/m (needs --allow-devices)"),
    LINUX + "initProcessEnabled": Field(A, "Init"),
    LINUX + "sharedMemorySize": Field(A, "ShmSize (MiB)"),
    LINUX + "tmpfs": Field(A, "Tmpfs with size (MiB) and mount options"),
    LINUX + "maxSwap": Field(A, "MemorySwap = memory + maxSwap (MiB); needs the container's memory"),
    LINUX + "swappiness": Field(A, "MemorySwappiness (ECS's default 60 when only maxSwap is given)"),
    # -- logConfiguration
    LOG + "logDriver": Field(
        A,
        "json-file, syslog, journald, gelf, fluentd, splunk; awslogs to portside's CloudWatch Logs "
        "(options as docs/logs.md says); awsfirelens is refused",
    ),
    LOG + "options": Field(A, "the driver's options"),
    LOG + "secretOptions": Field(R, "a log driver's secrets are not resolved (a container's secrets are)"),
    # -- volumes
    VOLUME + "name": Field(A, "what mountPoints refer to"),
    VOLUME + "host": Field(
        A, "sourcePath: a bind mount, only below --allow-host-path; no sourcePath: a task volume"
    ),
    VOLUME + "dockerVolumeConfiguration": Field(
        A,
        "a Docker volume (scope task or shared); a driver other than local, driverOpts and labels are refused",
    ),
    VOLUME + "efsVolumeConfiguration": Field(R, "no EFS here"),
    VOLUME + "s3filesVolumeConfiguration": Field(R, "no S3 Files here"),
    VOLUME + "fsxWindowsFileServerVolumeConfiguration": Field(R, "no FSx here"),
    VOLUME + "configuredAtLaunch": Field(
        R, "refused when true: RunTask volumeConfigurations are not implemented"
    ),
}

# RunTask's overrides, keyed as "cpu" (TaskOverride) and "containerOverrides[].command".
OVERRIDE = "containerOverrides[]."
OVERRIDE_FIELDS: dict[str, Field] = {
    "containerOverrides": Field(A, "per container, rows below"),
    "cpu": Field(A, "what the task reserves on the host"),
    "memory": Field(A, "what the task reserves on the host"),
    "inferenceAcceleratorOverrides": Field(R, "no Elastic Inference here"),
    "executionRoleArn": Field(I, "as the task definition's"),
    "taskRoleArn": Field(I, "as the task definition's"),
    "ephemeralStorage": Field(I, "as the task definition's"),
    OVERRIDE + "name": Field(A, "which container"),
    OVERRIDE + "command": Field(A, "Cmd"),
    OVERRIDE + "environment": Field(A, "added to Env"),
    OVERRIDE + "environmentFiles": Field(R, "S3 environment files cannot be fetched here"),
    OVERRIDE + "cpu": Field(A, "CPU shares"),
    OVERRIDE + "memory": Field(A, "hard memory limit (MiB)"),
    OVERRIDE + "memoryReservation": Field(A, "soft memory limit (MiB)"),
    OVERRIDE + "resourceRequirements": Field(R, "GPUs and inference accelerators are not scheduled here"),
}

OVERRIDE_SHAPES = {TASK: "TaskOverride", OVERRIDE: "ContainerOverride"}

SHAPES = {
    TASK: "RegisterTaskDefinitionRequest",
    CONTAINER: "ContainerDefinition",
    LINUX: "LinuxParameters",
    LOG: "LogConfiguration",
    VOLUME: "Volume",
}


def check_supported(content: Mapping[str, Any]) -> None:
    """Raise ``InvalidParameterException`` at the first field portside would not apply as asked."""
    for field, reason in _unsupported(content):
        raise InvalidParameterException(f"{field}: {reason}; portside cannot run this task as defined.")


def check_overrides_supported(overrides: Mapping[str, Any]) -> None:
    """Raise ``InvalidParameterException`` at the first RunTask override portside would not apply."""
    for key, value in overrides.items():
        row = OVERRIDE_FIELDS.get(key)
        if row is not None and row.support is Support.REFUSED and _in_use(value):
            raise InvalidParameterException(
                f"overrides.{key}: {row.note}; portside cannot run this task as asked."
            )
    for i, override in enumerate(overrides.get("containerOverrides") or []):
        for key, value in override.items():
            row = OVERRIDE_FIELDS.get(OVERRIDE + key)
            if row is not None and row.support is Support.REFUSED and _in_use(value):
                raise InvalidParameterException(
                    f"overrides.containerOverrides[{i}].{key}: {row.note}; portside cannot run this task as asked."
                )


def _unsupported(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in content.items():
        yield from _refused(TASK, key, key, value)
    for i, volume in enumerate(content.get("volumes") or []):
        for key, value in volume.items():
            yield from _refused(VOLUME, key, f"volumes[{i}].{key}", value)
        yield from _volume_rules(f"volumes[{i}]", volume)
    mode = content.get("networkMode", "bridge")
    for i, definition in enumerate(content.get("containerDefinitions") or []):
        at = f"containerDefinitions[{i}]"
        for key, value in definition.items():
            yield from _refused(CONTAINER, key, f"{at}.{key}", value)
        for key, value in (definition.get("linuxParameters") or {}).items():
            yield from _refused(LINUX, key, f"{at}.linuxParameters.{key}", value)
        for key, value in (definition.get("logConfiguration") or {}).items():
            yield from _refused(LOG, key, f"{at}.logConfiguration.{key}", value)
        yield from _container_rules(at, definition, mode)
        yield from _sysctl_rules(at, definition, mode, content.get("ipcMode"))


def _refused(shape: str, key: str, field: str, value: Any) -> Iterator[tuple[str, str]]:
    row = FIELDS.get(shape + key)
    if row is None or row.support is not Support.REFUSED or not _in_use(value):
        return
    yield field, row.note


def _in_use(value: Any) -> bool:
    """A refused field counts only when it asks for something: not null, false, empty, or enabled: false."""
    if isinstance(value, Mapping) and "enabled" in value:
        return bool(value["enabled"])
    return value not in (None, False, "", [], {})


def _volume_rules(at: str, volume: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    config = volume.get("dockerVolumeConfiguration") or {}
    if config.get("driver") not in (None, "local"):
        yield (
            f"{at}.dockerVolumeConfiguration.driver",
            f"volume driver {config['driver']!r} is not applied (only local)",
        )
    for key in ("driverOpts", "labels"):
        if config.get(key):
            yield f"{at}.dockerVolumeConfiguration.{key}", "volume driver options and labels are not applied"


def _container_rules(at: str, definition: Mapping[str, Any], mode: str) -> Iterator[tuple[str, str]]:
    log = definition.get("logConfiguration") or {}
    if log.get("logDriver") and log["logDriver"] not in APPLIED_LOG_DRIVERS:
        yield (
            f"{at}.logConfiguration.logDriver",
            f"log driver {log['logDriver']!r} needs AWS; portside applies {', '.join(APPLIED_LOG_DRIVERS)}",
        )
    yield from awslogs.problems(at, definition)
    linux = definition.get("linuxParameters") or {}
    for key, low, high in LINUX_RANGES:
        value = linux.get(key)
        if value is not None and not low <= value <= high:
            yield f"{at}.linuxParameters.{key}", f"must be from {low} to {high} (got {value})"
    for j, mount in enumerate(linux.get("tmpfs") or []):
        if mount.get("size", 1) < 1:
            yield f"{at}.linuxParameters.tmpfs[{j}].size", f"must be at least 1 MiB (got {mount['size']})"
    if linux.get("maxSwap") is not None and not definition.get("memory"):
        yield (
            f"{at}.linuxParameters.maxSwap",
            f"Docker limits swap only together with a hard memory limit ({at}.memory)",
        )
    if definition.get("disableNetworking"):
        if definition.get("portMappings"):
            yield f"{at}.disableNetworking", "a container without networking cannot publish portMappings"
        if mode == "awsvpc":
            yield f"{at}.disableNetworking", "not supported with the awsvpc network mode (as on ECS)"


def _sysctl_rules(
    at: str, definition: Mapping[str, Any], mode: str, ipc_mode: Any
) -> Iterator[tuple[str, str]]:
    """systemControls of a namespace the task shares with the host (ECS: "not supported"; runc refuses them)."""
    for j, control in enumerate(definition.get("systemControls") or []):
        name = str(control.get("namespace") or "")
        if mode == "host" and name.startswith("net."):
            yield (
                f"{at}.systemControls[{j}]",
                f"{name} would change the host's network namespace (networkMode host)",
            )
        if ipc_mode == "host" and (name in IPC_SYSCTLS or name.startswith("fs.mqueue.")):
            yield f"{at}.systemControls[{j}]", f"{name} would change the host's IPC namespace (ipcMode host)"
