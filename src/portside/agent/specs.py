"""Translate an ECS container definition into the driver's ``ContainerSpec``.

Pure data mapping, kept apart from the agent's I/O so it can be read against
the ECS parameter reference line by line. Fields portside does not act on are
listed in docs/task-definitions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portside.agent.driver import (
    LABEL_CLUSTER,
    LABEL_CONTAINER_NAME,
    LABEL_FAMILY,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_REVISION,
    LABEL_TASK_ARN,
    ContainerSpec,
)
from portside.config import AWSVPC_NETWORK_NAME
from portside.core import awslogs
from portside.core.dependencies import start_order
from portside.core.task import Container, Task

NANOS_PER_S = 1_000_000_000
MIB = 1024 * 1024
# The ECS agent passes CPU shares of 0 or 1 to Docker as 2, Docker's minimum.
MIN_CPU_SHARES = 2
# "If a value isn't specified for swappiness, a default value of 60 is used" (only with maxSwap).
DEFAULT_SWAPPINESS = 60
# ECS device permissions -> Docker's cgroup permission letters; none given means all three.
DEVICE_PERMISSIONS = {"read": "r", "write": "w", "mknod": "m"}


def docker_name(family: str, revision: int, container: str, task_id: str) -> str:
    """Deterministic container name, so Docker itself refuses a second create of the same container."""
    return f"ecs-{family}-{revision}-{container}-{task_id}"


def volume_name(task: Task, volume: str) -> str:
    return f"ecs-{task.family}-{task.revision}-{volume}-{task.id}"


def build_spec(
    task: Task,
    container: Container,
    definition: dict[str, Any],
    content: dict[str, Any],
    publish_ip: str,
    owner: str,
    secrets: Mapping[str, str] | None = None,
) -> ContainerSpec:
    """The ContainerSpec for one container of ``task``.

    ``definition`` is the container definition, ``content`` the whole task definition.
    Overrides of command and environment from RunTask are applied here. ``secrets``: the
    values of the container's ``secrets`` (variable -> value), as the control plane sent them.
    """
    override = _override_for(task, container.name)
    environment = {e["name"]: e.get("value", "") for e in definition.get("environment", [])}
    environment.update({e["name"]: e.get("value", "") for e in override.get("environment", [])})
    environment.update(secrets or {})
    labels = {str(k): str(v) for k, v in (definition.get("dockerLabels") or {}).items()}
    labels.update(
        {
            LABEL_MANAGED: "true",
            LABEL_OWNER: owner,
            LABEL_TASK_ARN: task.arn,
            LABEL_CONTAINER_NAME: container.name,
            LABEL_FAMILY: task.family,
            LABEL_REVISION: str(task.revision),
            LABEL_CLUSTER: task.cluster,
        }
    )
    spec = ContainerSpec(
        name=container.docker_name,
        image=container.image,
        labels=labels,
        command=override.get("command", definition.get("command")) or None,
        entrypoint=definition.get("entryPoint") or None,
        environment=environment,
        working_dir=definition.get("workingDirectory"),
        user=definition.get("user"),
        hostname=definition.get("hostname"),
        memory_bytes=container.memory * MIB if container.memory else None,
        memory_reservation_bytes=container.memory_reservation * MIB if container.memory_reservation else None,
        cpu_shares=max(container.cpu, MIN_CPU_SHARES),
        stop_timeout_s=definition.get("stopTimeout"),
        read_only=bool(definition.get("readonlyRootFilesystem")),
        privileged=bool(definition.get("privileged")),
        ulimits=[
            {"name": u["name"], "soft": u["softLimit"], "hard": u["hardLimit"]} for u in definition.get("ulimits") or []
        ],
        extra_hosts={h["hostname"]: h["ipAddress"] for h in definition.get("extraHosts") or []},
        dns_servers=list(definition.get("dnsServers") or []),
        dns_search=list(definition.get("dnsSearchDomains") or []),
        healthcheck=_healthcheck(definition.get("healthCheck")),
        sysctls={c["namespace"]: c["value"] for c in definition.get("systemControls") or [] if c.get("namespace")},
        security_options=list(definition.get("dockerSecurityOptions") or []),
        network_disabled=bool(definition.get("disableNetworking")),
        log_config=_log_config(definition.get("logConfiguration")),
        interactive=bool(definition.get("interactive")),
        tty=bool(definition.get("pseudoTerminal")),
    )
    _apply_linux_parameters(spec, container, definition.get("linuxParameters") or {})
    _apply_network(spec, task, container, definition, content, publish_ip)
    _apply_namespaces(spec, task, container, content)
    _apply_volumes(spec, task, definition, content)
    return spec


def _apply_linux_parameters(spec: ContainerSpec, container: Container, linux: dict[str, Any]) -> None:
    spec.init = linux.get("initProcessEnabled")
    capabilities = linux.get("capabilities") or {}
    spec.cap_add = list(capabilities.get("add") or [])
    spec.cap_drop = list(capabilities.get("drop") or [])
    for device in linux.get("devices") or []:
        permissions = "".join(DEVICE_PERMISSIONS[p] for p in device.get("permissions") or []) or "rwm"
        spec.devices.append(f"{device['hostPath']}:{device.get('containerPath') or device['hostPath']}:{permissions}")
    for mount in linux.get("tmpfs") or []:
        spec.tmpfs[mount["containerPath"]] = ",".join([f"size={mount['size']}m", *(mount.get("mountOptions") or [])])
    if linux.get("sharedMemorySize") is not None:
        spec.shm_size_bytes = linux["sharedMemorySize"] * MIB
    # maxSwap is swap on top of the hard limit; Docker's MemorySwap is the two together. Without
    # maxSwap, swappiness is ignored and the host's swap settings apply, as on ECS. RunTask refuses
    # maxSwap without a hard limit (core/taskdef_support.py).
    if linux.get("maxSwap") is not None and container.memory:
        spec.memory_swap_bytes = (container.memory + linux["maxSwap"]) * MIB
        spec.memory_swappiness = linux.get("swappiness", DEFAULT_SWAPPINESS)


def _apply_namespaces(spec: ContainerSpec, task: Task, container: Container, content: dict[str, Any]) -> None:
    """Task-level pidMode and ipcMode: the host's namespace, or one namespace for the whole task.

    For ``task`` the first container to start owns the namespace (Docker joins only a running
    container's) and the others join it, as with awsvpc's network namespace.
    """
    owner = namespace_owner(task, content)
    pid_mode = content.get("pidMode")
    if pid_mode == "host":
        spec.pid_mode = "host"
    elif pid_mode == "task" and container is not owner:
        spec.pid_mode = f"container:{owner.docker_name}"
    ipc_mode = content.get("ipcMode")
    if ipc_mode in ("host", "none"):
        spec.ipc_mode = ipc_mode
    elif ipc_mode == "task":
        spec.ipc_mode = "shareable" if container is owner else f"container:{owner.docker_name}"


#: Where an awslogs container's output is kept until its agent ships it (Docker's rotated binary files).
LOCAL_LOG_DRIVER = "local"


def _log_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """ECS logConfiguration -> Docker LogConfig; RunTask refuses the drivers that need AWS.

    ``awslogs`` never reaches Docker (its driver would call AWS): the container logs to Docker's
    ``local`` driver and the agent ships its output (agent/log_shipper.py).
    """
    if not config or not config.get("logDriver"):
        return None
    if config["logDriver"] == awslogs.DRIVER:
        return {"type": LOCAL_LOG_DRIVER, "config": {}}
    return {"type": config["logDriver"], "config": {str(k): str(v) for k, v in (config.get("options") or {}).items()}}


def _override_for(task: Task, name: str) -> dict[str, Any]:
    for override in task.overrides.get("containerOverrides", []):
        if override.get("name") == name:
            return dict(override)
    return {}


def awsvpc_owner(task: Task, content: dict[str, Any]) -> Container:
    """The container of an awsvpc task that holds the task's network namespace (``namespace_owner``)."""
    return namespace_owner(task, content)


def namespace_owner(task: Task, content: dict[str, Any]) -> Container:
    """The container that holds the namespaces a task's containers share.

    The first in start order (not definition order): Docker can only join the namespace of a
    container that is already running, and a container listed first may depend on a later one
    (an app listed before the proxy it waits for).
    """
    return task.container(start_order(content["containerDefinitions"])[0])


def _apply_network(
    spec: ContainerSpec,
    task: Task,
    container: Container,
    definition: dict[str, Any],
    content: dict[str, Any],
    publish_ip: str,
) -> None:
    mode = task.network_mode
    if mode == "host":
        spec.network_mode = "host"
        spec.hostname = None
        return
    if mode == "none":
        spec.network_mode = "none"
        return
    if mode == "awsvpc":
        # Containers of an awsvpc task share one network namespace, as they share one ENI in ECS:
        # the network owner joins the portside network, the others join its namespace.
        owner = awsvpc_owner(task, content)
        if container is owner:
            spec.network_mode = AWSVPC_NETWORK_NAME
            spec.network_aliases = [c.name for c in task.containers]
        else:
            spec.network_mode = f"container:{owner.docker_name}"
            spec.hostname = None
        return
    spec.network_mode = "bridge"
    for plan in container.ports:
        for container_port, host_port in _expand(plan):
            key = f"{container_port}/{plan.protocol}"
            spec.exposed_ports.append(key)
            spec.port_bindings[key] = (publish_ip, host_port)
    by_name = {c.name: c for c in task.containers}
    for link in definition.get("links") or []:
        name, _, alias = link.partition(":")
        spec.links.append(f"{by_name[name].docker_name}:{alias or name}")


def _expand(plan: Any) -> list[tuple[int, int]]:
    if plan.container_port_range:
        c_start, c_end = (int(x) for x in plan.container_port_range.split("-"))
        h_start = int(plan.host_port_range.split("-")[0])
        return [(c, h_start + i) for i, c in enumerate(range(c_start, c_end + 1))]
    return [(plan.container_port, plan.host_port)]


def _apply_volumes(spec: ContainerSpec, task: Task, definition: dict[str, Any], content: dict[str, Any]) -> None:
    volumes = {v["name"]: v for v in content.get("volumes") or []}
    for mount in definition.get("mountPoints") or []:
        volume = volumes[mount["sourceVolume"]]
        source = _volume_source(task, volume)
        suffix = ":ro" if mount.get("readOnly") else ""
        spec.binds.append(f"{source}:{mount['containerPath']}{suffix}")
    by_name = {c.name: c for c in task.containers}
    for source in definition.get("volumesFrom") or []:
        suffix = ":ro" if source.get("readOnly") else ""
        spec.volumes_from.append(f"{by_name[source['sourceContainer']].docker_name}{suffix}")


def task_volume_names(task: Task, content: dict[str, Any]) -> list[str]:
    """The Docker volumes that belong to ``task`` alone, to remove with its containers.

    Every volume without ``host.sourcePath`` and not ``scope: shared``: "Docker volumes that are
    scoped to a task are automatically provisioned when the task starts and destroyed when the task
    stops" ([model] DockerVolumeConfiguration.scope). portside destroys them with the containers,
    after ``--task-cleanup-wait``.
    """
    names = []
    for volume in content.get("volumes") or []:
        source = _volume_source(task, volume)
        if source == volume_name(task, volume["name"]):
            names.append(source)
    return names


def _volume_source(task: Task, volume: dict[str, Any]) -> str:
    host = volume.get("host") or {}
    if host.get("sourcePath"):
        return str(host["sourcePath"])
    docker_config = volume.get("dockerVolumeConfiguration") or {}
    if docker_config.get("scope") == "shared":
        return str(volume["name"])
    return volume_name(task, volume["name"])


def _healthcheck(check: dict[str, Any] | None) -> dict[str, Any] | None:
    """ECS healthCheck -> Docker Healthcheck, with ECS's defaults (interval 30, timeout 5, retries 3)."""
    if not check or not check.get("command"):
        return None
    out: dict[str, Any] = {
        "test": list(check["command"]),
        "interval": int(check.get("interval", 30)) * NANOS_PER_S,
        "timeout": int(check.get("timeout", 5)) * NANOS_PER_S,
        "retries": int(check.get("retries", 3)),
    }
    if check.get("startPeriod"):
        out["start_period"] = int(check["startPeriod"]) * NANOS_PER_S
    return out
