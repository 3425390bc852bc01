"""The Docker Engine driver: the only module that imports the Docker SDK.

Blocking SDK calls run on a dedicated thread pool (sized for many concurrent
container starts; asyncio's default pool has only cores+4 threads) and every
``docker.errors`` exception is converted to a ``DriverError`` in
``_map_docker_errors``. The event stream runs on its own daemon thread and
reconnects with back-off if the engine goes away.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from portside.agent.docker_log_frames import frame_lines, raw_lines
from portside.agent.driver import (
    LABEL_MANAGED,
    LABEL_OWNER,
    BridgeNetwork,
    ContainerEvent,
    ContainerSpec,
    ContainerState,
)
from portside.errors import DriverError, NameConflict, NoSuchObject, PortAllocated

T = TypeVar("T")

DOCKER_THREADS = 32
DOCKER_API_TIMEOUT_S = 120
EVENT_RECONNECT_MAX_S = 5.0
_PORT_IN_MESSAGE = re.compile(r"(?:Bind for [^ ]*?:(\d+) failed|bind [^ ]*?:(\d+): address already in use|:(\d+): bind: address already in use)")
_WATCHED_ACTIONS = {"start", "die", "oom", "destroy"}


@contextmanager
def _map_docker_errors(what: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NoSuchObject(f"{what}: {_explain(exc)}") from exc
    except docker.errors.APIError as exc:
        message = _explain(exc)
        if exc.status_code == 409:
            raise NameConflict(f"{what}: {message}") from exc
        if "port is already allocated" in message or "address already in use" in message:
            match = _PORT_IN_MESSAGE.search(message)
            port = next((int(g) for g in match.groups() if g), None) if match else None
            raise PortAllocated(f"{what}: {message}", port=port) from exc
        raise DriverError(f"{what}: {message}", retryable=(exc.status_code or 500) >= 500) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DriverError(f"{what}: {exc}", retryable=True) from exc


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


class DockerDriver:
    def __init__(self, owner: str, base_url: str | None = None) -> None:
        self.owner = owner
        with _map_docker_errors("connecting to the Docker Engine"):
            kwargs: dict[str, Any] = {"timeout": DOCKER_API_TIMEOUT_S, "max_pool_size": DOCKER_THREADS}
            if base_url:
                self.api = docker.APIClient(base_url=base_url, version="auto", **kwargs)
            else:
                self.api = docker.from_env(**kwargs).api
            self.version = self.api.version()
        self._pool = ThreadPoolExecutor(DOCKER_THREADS, thread_name_prefix="docker")
        self._closed = threading.Event()

    @property
    def engine_version(self) -> str:
        return str(self.version.get("Version", "unknown"))

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def run() -> T:
            with _map_docker_errors(what):
                return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    # -- images

    async def image_present(self, image: str) -> bool:
        try:
            await self._call(f"inspecting image {image}", self.api.inspect_image, image)
            return True
        except NoSuchObject:
            return False

    async def pull(self, image: str, timeout_s: float) -> None:
        repository, tag = _split_image(image)
        try:
            await asyncio.wait_for(
                self._call(f"pulling {image}", self.api.pull, repository, tag=tag), timeout=timeout_s
            )
        except TimeoutError as exc:
            raise DriverError(f"pull of {image} did not finish within {timeout_s:g} s") from exc

    # -- networks

    async def ensure_network(self, name: str) -> None:
        def ensure() -> None:
            if not self.api.networks(names=[name]):
                try:
                    self.api.create_network(name, driver="bridge", labels={LABEL_MANAGED: "true"})
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise

        await self._call(f"creating network {name}", ensure)

    async def bridge_networks(self, names: list[str]) -> list[BridgeNetwork]:
        """The named bridge networks that exist; a missing one is left out."""

        def inspect() -> list[BridgeNetwork]:
            found = []
            for name in names:
                for summary in self.api.networks(names=[name]):
                    if summary.get("Name") != name or summary.get("Driver") != "bridge":
                        continue
                    data = self.api.inspect_network(summary["Id"])
                    options = data.get("Options") or {}
                    interface = options.get("com.docker.network.bridge.name") or "br-" + data["Id"][:12]
                    config = ((data.get("IPAM") or {}).get("Config") or [{}])[0]
                    found.append(BridgeNetwork(name, interface, config.get("Subnet", ""), config.get("Gateway", "")))
            return found

        return await self._call("inspecting bridge networks", inspect)

    # -- containers

    async def create(self, spec: ContainerSpec) -> str:
        def create() -> str:
            host_config = self.api.create_host_config(
                port_bindings={k: v for k, v in spec.port_bindings.items()} or None,
                mem_limit=spec.memory_bytes,
                mem_reservation=spec.memory_reservation_bytes,
                cpu_shares=spec.cpu_shares,
                network_mode=spec.network_mode,
                links=dict(link.split(":", 1) if ":" in link else (link, link) for link in spec.links) or None,
                binds=spec.binds or None,
                volumes_from=spec.volumes_from or None,
                read_only=spec.read_only or None,
                privileged=spec.privileged,
                ulimits=[docker.types.Ulimit(**u) for u in spec.ulimits] or None,
                extra_hosts=spec.extra_hosts or None,
                dns=spec.dns_servers or None,
                dns_search=spec.dns_search or None,
                init=spec.init,
                cap_add=spec.cap_add or None,
                cap_drop=spec.cap_drop or None,
                devices=spec.devices or None,
                tmpfs=spec.tmpfs or None,
                shm_size=spec.shm_size_bytes,
                memswap_limit=spec.memory_swap_bytes,
                mem_swappiness=spec.memory_swappiness,
                sysctls=spec.sysctls or None,
                security_opt=spec.security_options or None,
                ipc_mode=spec.ipc_mode,
                pid_mode=spec.pid_mode,
                log_config=spec.log_config,
            )
            networking_config = None
            if spec.network_aliases and spec.network_mode not in ("bridge", "host", "none"):
                networking_config = self.api.create_networking_config(
                    {spec.network_mode: self.api.create_endpoint_config(aliases=spec.network_aliases)}
                )
            result = self.api.create_container(
                spec.image,
                command=spec.command,
                entrypoint=spec.entrypoint,
                name=spec.name,
                environment=spec.environment or None,
                working_dir=spec.working_dir,
                user=spec.user,
                hostname=spec.hostname,
                labels=spec.labels,
                ports=[_port_tuple(p) for p in spec.exposed_ports] or None,
                host_config=host_config,
                healthcheck=spec.healthcheck,
                stop_timeout=spec.stop_timeout_s,
                networking_config=networking_config,
                network_disabled=spec.network_disabled,
                stdin_open=spec.interactive,
                tty=spec.tty,
            )
            return str(result["Id"])

        return await self._call(f"creating container {spec.name}", create)

    async def start(self, container_id: str) -> None:
        await self._call(f"starting container {container_id[:12]}", self.api.start, container_id)

    async def inspect(self, name_or_id: str) -> ContainerState | None:
        try:
            data = await self._call(f"inspecting container {name_or_id}", self.api.inspect_container, name_or_id)
        except NoSuchObject:
            return None
        return _state_from_inspect(data)

    async def stop(self, container_id: str, timeout_s: int) -> None:
        try:
            await self._call(
                f"stopping container {container_id[:12]}", self.api.stop, container_id, timeout=timeout_s
            )
        except NoSuchObject:
            return

    async def remove(self, container_id: str) -> None:
        try:
            await self._call(
                f"removing container {container_id[:12]}", self.api.remove_container, container_id, force=True, v=True
            )
        except NoSuchObject:
            return
        except NameConflict:  # removal already in progress
            return

    async def remove_volume(self, name: str) -> None:
        try:
            await self._call(f"removing volume {name}", self.api.remove_volume, name)
        except (NoSuchObject, NameConflict):  # gone already, or a container still uses it
            return

    async def list_managed(self) -> list[ContainerState]:
        def list_all() -> list[ContainerState]:
            summaries = self.api.containers(all=True, filters={"label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self.owner}"]})
            states = []
            for summary in summaries:
                try:
                    states.append(_state_from_inspect(self.api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:
                    continue
            return states

        return await self._call("listing portside containers", list_all)

    def watch_events(self, on_event: Callable[[ContainerEvent], None]) -> None:
        """Call ``on_event`` (from a daemon thread) for every event of a portside container."""

        def pump() -> None:
            backoff = 0.2
            while not self._closed.is_set():
                try:
                    stream = self.api.events(
                        decode=True,
                        since=int(time.time()) - 1,
                        filters={"type": "container", "label": [f"{LABEL_MANAGED}=true", f"{LABEL_OWNER}={self.owner}"]},
                    )
                    backoff = 0.2
                    for event in stream:
                        if self._closed.is_set():
                            return
                        action = str(event.get("Action") or event.get("status") or "")
                        action = action.split(":", 1)[0].strip()
                        if action not in _WATCHED_ACTIONS and action != "health_status":
                            continue
                        attrs = dict(event.get("Actor", {}).get("Attributes", {}))
                        on_event(ContainerEvent(action, str(event.get("id", "")), attrs.get("name", ""), attrs))
                except Exception:  # the engine went away: reconnect; the periodic resync covers the gap
                    if self._closed.wait(backoff):
                        return
                    backoff = min(backoff * 2, EVENT_RECONNECT_MAX_S)

        threading.Thread(target=pump, name="docker-events", daemon=True).start()

    def follow_logs(self, container_id: str, since_s: int) -> DockerLogFollow:
        """Follow the container's output with Docker's timestamps (blocking: iterate on a thread)."""
        return DockerLogFollow(self.api, container_id, since_s)

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.api.close()
        except Exception:  # closing a broken client must not mask the real shutdown reason
            pass


class DockerLogFollow:
    """``docker logs --follow --timestamps``, as (timestamp ns, line) pairs (agent/docker_log_frames.py).

    A stream that cannot be read ends the iteration (errors are not raised on the agent's reading
    thread; the follower reads again from its cursor).
    """

    def __init__(self, api: Any, container_id: str, since_s: int) -> None:
        self.api = api
        self.container_id = container_id
        self.since_s = since_s
        self._stream: Any = None
        self._closed = False

    def close(self) -> None:
        self._closed = True
        stream = self._stream
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()
            except Exception:  # closing a broken stream must not raise on the agent's thread
                pass

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        try:
            tty = bool((self.api.inspect_container(self.container_id).get("Config") or {}).get("Tty"))
            self._stream = self.api.logs(
                self.container_id, stdout=True, stderr=True, stream=True, follow=True, timestamps=True,
                since=self.since_s if self.since_s > 0 else None,
            )
            lines = raw_lines(self._stream) if tty else frame_lines(self._stream)
            for line in lines:
                if self._closed:
                    return
                yield line
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError):
            return


def _split_image(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


def _port_tuple(key: str) -> int | tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port), proto) if proto and proto != "tcp" else int(port)


def _state_from_inspect(data: dict[str, Any]) -> ContainerState:
    state = data.get("State") or {}
    settings = data.get("NetworkSettings") or {}
    health = (state.get("Health") or {}).get("Status")
    networks = settings.get("Networks") or {}
    return ContainerState(
        id=data["Id"],
        name=str(data.get("Name", "")).lstrip("/"),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
        status=str(state.get("Status", "")),
        exit_code=state.get("ExitCode") if state.get("Status") in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        health=health,
        ports=dict(settings.get("Ports") or {}),
        ip_addresses={name: n.get("IPAddress", "") for name, n in networks.items() if n.get("IPAddress")},
        pid=int(state.get("Pid") or 0),
    )
