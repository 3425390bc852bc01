"""The container driver seam: what the agent needs from a container runtime.

The agent speaks only this Protocol; ``docker_driver.DockerDriver`` is the real
implementation. Errors are ``portside.errors.DriverError`` subclasses, never the
runtime's own exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# Labels every portside container carries; the agent finds its containers by them.
LABEL_MANAGED = "com.portside.managed"
# Which server (state directory) owns a container: servers sharing one engine never touch each other's.
LABEL_OWNER = "com.portside.owner"
LABEL_TASK_ARN = "com.amazonaws.ecs.task-arn"
LABEL_CONTAINER_NAME = "com.amazonaws.ecs.container-name"
LABEL_FAMILY = "com.amazonaws.ecs.task-definition-family"
LABEL_REVISION = "com.amazonaws.ecs.task-definition-version"
LABEL_CLUSTER = "com.amazonaws.ecs.cluster"


@dataclass
class ContainerSpec:
    name: str
    image: str
    labels: dict[str, str]
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    memory_bytes: int | None = None
    memory_reservation_bytes: int | None = None
    cpu_shares: int | None = None
    stop_timeout_s: int | None = None
    # "80/tcp" -> (host ip, host port)
    port_bindings: dict[str, tuple[str, int]] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    network_mode: str = "bridge"
    network_aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "name:alias"
    binds: list[str] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    healthcheck: dict[str, Any] | None = None
    read_only: bool = False
    privileged: bool = False
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    dns_servers: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    init: bool | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # "host path:container path:rwm"
    tmpfs: dict[str, str] = field(default_factory=dict)  # container path -> mount options
    shm_size_bytes: int | None = None
    # Memory plus swap, as Docker's MemorySwap; only with memory_bytes.
    memory_swap_bytes: int | None = None
    memory_swappiness: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    security_options: list[str] = field(default_factory=list)
    network_disabled: bool = False
    ipc_mode: str | None = None  # host | none | shareable | container:NAME
    pid_mode: str | None = None  # host | container:NAME
    log_config: dict[str, Any] | None = None  # {"type": driver, "config": {option: value}}
    interactive: bool = False
    tty: bool = False


@dataclass
class ContainerState:
    id: str
    name: str
    labels: dict[str, str]
    status: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    health: str | None = None  # None | starting | healthy | unhealthy
    ports: dict[str, list[dict[str, str]] | None] = field(default_factory=dict)
    ip_addresses: dict[str, str] = field(default_factory=dict)
    pid: int = 0  # the main process on the host (Docker's State.Pid; 0 when not running): names its cgroup

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused")

    @property
    def exited(self) -> bool:
        return self.status in ("exited", "dead")


@dataclass(frozen=True)
class BridgeNetwork:
    """A Docker bridge network as the host sees it: its interface, subnet and gateway address."""

    name: str
    interface: str
    subnet: str
    gateway: str


@dataclass(frozen=True)
class ContainerEvent:
    action: str  # start | die | oom | health_status | destroy
    container_id: str
    name: str
    labels: dict[str, str]


class LogFollow(Protocol):
    """A blocking iterator of (timestamp in ns, line bytes); ``close()`` ends it from another thread."""

    def __iter__(self) -> Iterator[tuple[int, bytes]]: ...

    def close(self) -> None: ...


class Driver(Protocol):
    owner: str

    async def image_present(self, image: str) -> bool: ...

    async def pull(self, image: str, timeout_s: float) -> None: ...

    async def ensure_network(self, name: str) -> None: ...

    async def bridge_networks(self, names: list[str]) -> list[BridgeNetwork]: ...

    async def create(self, spec: ContainerSpec) -> str: ...

    async def start(self, container_id: str) -> None: ...

    async def inspect(self, name_or_id: str) -> ContainerState | None: ...

    async def stop(self, container_id: str, timeout_s: int) -> None: ...

    async def remove(self, container_id: str) -> None: ...

    async def remove_volume(self, name: str) -> None:
        """Remove a volume; one that is missing or still used by a container is left alone."""
        ...

    async def list_managed(self) -> list[ContainerState]: ...

    def watch_events(self, on_event: Callable[[ContainerEvent], None]) -> None: ...

    def follow_logs(self, container_id: str, since_s: int) -> LogFollow:
        """The container's output (stdout and stderr) from second ``since_s`` on, line by line, until it exits."""
        ...

    def close(self) -> None: ...
