"""The host agent: runs tasks' containers on this host and reports what they do.

Theory of operation
-------------------
The control plane hands the agent a committed task (``admit`` runs inside the
control plane's transaction, so the task row, its container names and its host
ports are stored together before any ``docker create``). The agent then drives
the task forward on its own (``launch``): pull policy, create every container
under a deterministic name, start them in dependency order, read the real
bindings back from Docker, RUNNING. ``stop`` drives it to STOPPED: SIGTERM,
stopTimeout, SIGKILL, ports released into quarantine.

All work on one task runs under that task's lock, so events, the resync loop,
starts and stops never interleave on it. The agent writes ``last_status`` and
container facts; it writes ``desired_status`` only when an essential container
exits (ECS's agent does the same).

Every step is safe to repeat after a crash: ``recover`` re-reads the store and
Docker, adopts containers by name and label, resumes unfinished starts and stops,
stops tasks whose containers vanished, and later removes containers no task owns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from portside.agent.bindings import bindings_from_docker, host_mode_bindings
from portside.agent.driver import LABEL_TASK_ARN, ContainerEvent, ContainerState, Driver
from portside.agent.firewall import FirewallError
from portside.agent.ports import META_KEY, assign_ports, reassign_port, restore_holdings
from portside.agent.specs import build_spec, task_volume_names
from portside.config import AWSVPC_NETWORK_NAME, ServerConfig
from portside.control.store import Store
from portside.core.dependencies import condition_met, dependencies, start_order
from portside.core.lifecycle import (
    REASON_ESSENTIAL_EXITED,
    REASON_OOM,
    REASON_PORTS_PREFIX,
    ContainerStatus,
    StopCode,
    TaskStatus,
)
from portside.core.ports import PortAllocator, PortRange
from portside.core.task import Container, Task
from portside.errors import DriverError, NameConflict, PortAllocated, PortsExhausted
from portside.faults import crash_point

log = logging.getLogger("portside.agent")

DEPENDENCY_POLL_S = 0.25
# How long a container waits for a dependency that sets no startTimeout of its own.
DEFAULT_START_TIMEOUT_S = 180.0
MAX_BIND_RETRIES = 5
REASON_VANISHED = "Container was removed while it was expected to run"


class HostAgent:
    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        driver: Driver,
        port_range: PortRange,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.driver = driver
        self.clock = clock
        self.port_range = port_range
        saved = store.get_meta(META_KEY)
        settings = {
            "reserved_tcp": config.reserved_ports_tcp,
            "reserved_udp": config.reserved_ports_udp,
            "quarantine_s": config.port_quarantine_s,
        }
        if saved:
            self.allocator = PortAllocator.from_dict(saved, port_range, **settings)
        else:
            self.allocator = PortAllocator(port_range, **settings)
        self.tasks: dict[str, Task] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._work: set[asyncio.Task[None]] = set()
        self._orphans_seen: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_change: list[Callable[[Task], None]] = []
        # Awaited before every ``docker start``: the host firewall brings its chain in step with the
        # stored tasks (this one's host ports included), or raises FirewallError and the start fails.
        self.before_start: Callable[[], Awaitable[None]] | None = None

    # -- called by the control plane

    def admit(self, task: Task, content: dict[str, Any]) -> None:
        """Assign the task's host ports and store it; call inside the control plane's transaction.

        Port exhaustion does not raise: the task is stored STOPPED with ECS's HostConfigError reason.
        """
        now = self.clock()
        self._definitions[task.task_definition_arn] = content
        try:
            assign_ports(self.allocator, task, now)
        except (PortsExhausted, ValueError) as exc:
            reason = REASON_PORTS_PREFIX + str(exc)
            for container in task.containers:
                container.last_status = ContainerStatus.STOPPED
                container.reason = reason
            task.request_stop(StopCode.TASK_FAILED_TO_START.value, reason, now)
            task.advance(TaskStatus.STOPPED, now)
        self.store.put_task(task)
        self._save_ports()
        if not task.is_stopped:
            self.tasks[task.arn] = task

    def launch(self, arn: str) -> None:
        if arn in self.tasks:
            self._spawn(self._start(arn))

    def stop(self, arn: str, stop_code: str, reason: str) -> Task | None:
        """Ask a task to stop (desired STOPPED) and drive it there in the background."""
        task = self.tasks.get(arn)
        if task is None:
            return None
        if task.request_stop(stop_code, reason, self.clock()):
            self._persist(task)
        self._spawn(self._stop(arn))
        return task

    def used_resources(self, container_instance_arn: str) -> tuple[int, int, set[str], set[str]]:
        """CPU, memory and static TCP/UDP host ports held by live tasks on this instance."""
        cpu = memory = 0
        tcp: set[str] = set()
        udp: set[str] = set()
        for task in self.tasks.values():
            if task.container_instance_arn != container_instance_arn:
                continue
            cpu += task.cpu
            memory += task.memory
            if task.network_mode == "awsvpc":
                continue
            for container in task.containers:
                for plan in container.ports:
                    if not plan.dynamic and plan.host_port:
                        (udp if plan.protocol == "udp" else tcp).add(str(plan.host_port))
        return cpu, memory, tcp, udp

    def local_endpoint(self, host_port: int) -> tuple[str, int] | None:
        """(bridge address, container port) of the live bridge-mode container published on ``host_port``."""
        for task in self.tasks.values():
            if task.network_mode != "bridge":
                continue  # draining tasks included: their targets must keep the path they had
            for container in task.containers:
                if container.bridge_ip is None:
                    continue
                for plan in container.ports:
                    if plan.host_port == host_port and plan.protocol == "tcp" and plan.container_port:
                        return container.bridge_ip, plan.container_port
        return None

    # -- lifetime

    async def start(self) -> None:
        """Recover state from the store and Docker, then watch events and resync periodically."""
        self._loop = asyncio.get_running_loop()
        await self.driver.ensure_network(AWSVPC_NETWORK_NAME)
        await self._recover()
        self.driver.watch_events(self._on_event_threadsafe)
        self._spawn(self._resync_forever())

    async def close(self) -> None:
        for work in list(self._work):
            work.cancel()
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait for every start and stop in flight (for tests and orderly shutdown)."""
        while True:
            pending = [w for w in self._work if w.get_name() != "resync"]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    # -- internals: bookkeeping

    def _spawn(self, coro: Any, name: str | None = None) -> None:
        work = asyncio.ensure_future(coro)
        if name:
            work.set_name(name)
        self._work.add(work)
        work.add_done_callback(self._work.discard)
        work.add_done_callback(_log_failure)

    def _lock(self, arn: str) -> asyncio.Lock:
        return self._locks.setdefault(arn, asyncio.Lock())

    def _persist(self, task: Task) -> None:
        self.store.put_task(task)
        for callback in self.on_change:
            callback(task)

    def _save_ports(self) -> None:
        self.store.put_meta(META_KEY, self.allocator.to_dict())

    def _definition(self, task: Task) -> dict[str, Any]:
        content = self._definitions.get(task.task_definition_arn)
        if content is None:
            content = self.store.get_task_definition(task.region, task.family, task.revision)
            if content is None:
                raise DriverError(f"task definition {task.task_definition_arn} is missing from the store")
            self._definitions[task.task_definition_arn] = content
        return content

    # -- starting

    async def _start(self, arn: str) -> None:
        async with self._lock(arn):
            task = self.tasks.get(arn)
            if task is None or task.desired_status == "STOPPED" or task.last_status >= TaskStatus.RUNNING:
                return
            try:
                await self._start_containers(task, self._definition(task))
            except (DriverError, FirewallError) as exc:
                self._fail_start(task, f"CannotStartContainerError: {exc.message}")
            if task.desired_status == "RUNNING":
                essentials = [c for c in task.containers if c.essential]
                if any(c.last_status is ContainerStatus.STOPPED for c in essentials):
                    task.request_stop(StopCode.ESSENTIAL_CONTAINER_EXITED.value, REASON_ESSENTIAL_EXITED, self.clock())
                    self._persist(task)
                elif all(c.last_status is ContainerStatus.RUNNING for c in essentials):
                    task.advance(TaskStatus.RUNNING, self.clock())
                    self._persist(task)
                    crash_point("after-running")
        if task.desired_status == "STOPPED":
            await self._stop(arn)

    async def _start_containers(self, task: Task, content: dict[str, Any]) -> None:
        """Pull, create every container, then start them in dependency order.

        Returns early when the start fails (``_fail_start`` has then asked the task to stop)
        or a stop was requested; the caller drives the task on from there.
        """
        definitions = {d["name"]: d for d in content["containerDefinitions"]}
        if not await self._pull_images(task):
            return
        order = start_order(content["containerDefinitions"])
        for name in order:
            await self._create(task, task.container(name), definitions[name], content)
        for name in order:
            if task.desired_status == "STOPPED":
                return
            container = task.container(name)
            if container.last_status is not ContainerStatus.PENDING:
                continue
            if not await self._wait_for_dependencies(task, definitions[name], definitions):
                return
            await self._start_container(task, container, definitions[name], content)

    async def _pull_images(self, task: Task) -> bool:
        behavior = self.config.image_pull_behavior
        task.timestamps.setdefault("pullStartedAt", self.clock())
        for image in dict.fromkeys(c.image for c in task.containers):
            present = await self.driver.image_present(image)
            if present and behavior in ("prefer-cached", "once"):
                continue
            try:
                await self.driver.pull(image, self.config.image_pull_timeout_s)
            except DriverError as exc:
                if present and behavior == "default":
                    continue
                self._fail_start(task, f"CannotPullContainerError: {exc.message}")
                return False
        task.timestamps.setdefault("pullStoppedAt", self.clock())
        return True

    async def _create(self, task: Task, container: Container, definition: dict[str, Any], content: dict[str, Any]) -> None:
        if container.docker_id:
            return
        spec = build_spec(task, container, definition, content, self.config.publish_ip, self.driver.owner)
        try:
            container.docker_id = await self.driver.create(spec)
        except NameConflict:
            existing = await self.driver.inspect(container.docker_name)
            if existing is None or existing.labels.get(LABEL_TASK_ARN) != task.arn:
                raise
            container.docker_id = existing.id  # created before a crash: adopt it, never a second one
        self._persist(task)
        crash_point("after-create")

    async def _start_container(
        self, task: Task, container: Container, definition: dict[str, Any], content: dict[str, Any]
    ) -> None:
        assert container.docker_id
        for _attempt in range(MAX_BIND_RETRIES):
            if self.before_start is not None:
                await self.before_start()  # also after a port moved: the chain must hold the new one
            try:
                await self.driver.start(container.docker_id)
                break
            except PortAllocated as exc:
                # Something took the port between our probe and Docker's bind: move on to the next port.
                if not reassign_port(self.allocator, task, exc.port, self.clock()):
                    raise
                self._save_ports()
                await self.driver.remove(container.docker_id)
                container.docker_id = None
                self._persist(task)
                await self._create(task, container, definition, content)
        state = await self.driver.inspect(container.docker_id)
        crash_point("after-start")
        if state is None:
            raise DriverError(f"container {container.docker_name} disappeared right after it started")
        self._apply_state(task, container, state)
        self._persist(task)

    async def _wait_for_dependencies(
        self, task: Task, definition: dict[str, Any], definitions: dict[str, dict[str, Any]]
    ) -> bool:
        """Wait until every dependency of ``definition`` meets its condition; False when one never will.

        As in ECS, a dependency's own ``startTimeout`` bounds how long its dependents wait for it
        ("If a startTimeout value is specified for containerB and it doesn't reach the desired
        status within that time then containerA gives up", [model] ContainerDefinition). The
        wait is counted from when the dependent starts waiting, right after its dependencies started.
        """
        deps = dependencies(definition)
        if not deps:
            return True
        began = self.clock()
        deadlines = {
            name: began + float(definitions[name].get("startTimeout") or DEFAULT_START_TIMEOUT_S) for name in deps
        }
        while True:
            verdicts: dict[str, bool | None] = {}
            for name, condition in deps.items():
                dep = task.container(name)
                if dep.docker_id and dep.last_status is not ContainerStatus.STOPPED:
                    state = await self.driver.inspect(dep.docker_id)
                    if state is not None:
                        self._apply_state(task, dep, state)
                verdicts[name] = condition_met(condition, dep.last_status.name, dep.exit_code, dep.health_status)
            if all(v is True for v in verdicts.values()):
                return True
            now = self.clock()
            late = any(v is not True and now > deadlines[name] for name, v in verdicts.items())
            if any(v is None for v in verdicts.values()) or late or task.desired_status == "STOPPED":
                name = definition["name"]
                self._fail_start(
                    task, f"DependencyError: dependency of container {name} can never be satisfied or timed out"
                )
                return False
            await asyncio.sleep(DEPENDENCY_POLL_S)

    def _fail_start(self, task: Task, reason: str) -> None:
        for container in task.containers:
            if container.last_status is ContainerStatus.PENDING and container.docker_id is None:
                container.reason = reason
        if task.request_stop(StopCode.TASK_FAILED_TO_START.value, reason, self.clock()):
            self._persist(task)

    # -- observing

    def _apply_state(self, task: Task, container: Container, state: ContainerState) -> None:
        """Copy what Docker says about a container into the record (forward-only)."""
        if state.running and container.last_status is ContainerStatus.PENDING:
            container.last_status = ContainerStatus.RUNNING
            if task.network_mode == "bridge":
                container.bridge_ip = state.ip_addresses.get("bridge")
            if task.network_mode == "host":
                container.network_bindings = host_mode_bindings(container.ports)
            elif task.network_mode == "bridge":
                container.network_bindings = bindings_from_docker(state.ports, container.ports)
            if task.network_mode == "awsvpc":
                # Only the network owner (specs.awsvpc_owner, the first to start) is on the network itself.
                task.private_ip = state.ip_addresses.get(AWSVPC_NETWORK_NAME) or task.private_ip
                container.private_ip = task.private_ip
        if container.has_health_check:
            container.health_status = {"healthy": "HEALTHY", "unhealthy": "UNHEALTHY"}.get(state.health or "", "UNKNOWN")
        if state.exited and container.last_status is not ContainerStatus.STOPPED:
            container.last_status = ContainerStatus.STOPPED
            container.exit_code = state.exit_code
            if state.oom_killed:
                container.reason = REASON_OOM
            elif state.error and not container.reason:
                container.reason = state.error

    def _on_event_threadsafe(self, event: ContainerEvent) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: ContainerEvent) -> None:
        arn = event.labels.get(LABEL_TASK_ARN)
        if arn and arn in self.tasks:
            self._spawn(self._refresh(arn))

    async def _refresh(self, arn: str) -> None:
        """Level-triggered: re-read the task's containers from Docker and act on what changed."""
        async with self._lock(arn):
            task = self.tasks.get(arn)
            if task is None or task.last_status < TaskStatus.RUNNING and task.desired_status == "RUNNING":
                return  # a start in flight reads its own containers
            changed = False
            essential_exited = False
            for container in task.containers:
                if not container.docker_id or container.last_status is ContainerStatus.STOPPED:
                    continue
                before = (container.last_status, container.health_status)
                state = await self.driver.inspect(container.docker_id)
                if state is None:
                    container.last_status = ContainerStatus.STOPPED
                    container.reason = container.reason or REASON_VANISHED
                else:
                    self._apply_state(task, container, state)
                changed |= before != (container.last_status, container.health_status)
            essential_exited = any(c.essential and c.last_status is ContainerStatus.STOPPED for c in task.containers)
            if essential_exited:
                changed |= task.request_stop(StopCode.ESSENTIAL_CONTAINER_EXITED.value, REASON_ESSENTIAL_EXITED, self.clock())
            if changed:
                task.version += 1
                self._persist(task)
        # A DEACTIVATING task is being drained by its owner, who stops it when its targets are done;
        # only a dead essential container cuts that short.
        if task.desired_status == "STOPPED" and (task.last_status is not TaskStatus.DEACTIVATING or essential_exited):
            await self._stop(arn)

    # -- stopping

    async def _stop(self, arn: str) -> None:
        async with self._lock(arn):
            task = self.tasks.get(arn)
            if task is None or task.is_stopped:
                return
            now = self.clock()
            if task.last_status < TaskStatus.STOPPING:
                task.advance(TaskStatus.STOPPING, now)
                self._persist(task)
            content = self._definition(task)
            definitions = {d["name"]: d for d in content["containerDefinitions"]}
            for name in reversed(start_order(content["containerDefinitions"])):
                container = task.container(name)
                if container.last_status is ContainerStatus.STOPPED or not container.docker_id:
                    container.last_status = ContainerStatus.STOPPED
                    continue
                timeout = definitions[name].get("stopTimeout") or self.config.stop_timeout_s
                try:
                    await self.driver.stop(container.docker_id, int(timeout))
                    state = await self.driver.inspect(container.docker_id)
                except DriverError as exc:
                    log.warning("stopping %s of task %s: %s", name, task.id, exc.message)
                    state = None
                if state is not None:
                    self._apply_state(task, container, state)
                container.last_status = ContainerStatus.STOPPED
            now = self.clock()
            task.advance(TaskStatus.DEPROVISIONING, now)
            task.advance(TaskStatus.STOPPED, now)
            with self.store.transaction():
                self.allocator.release(task.arn, now)
                self._save_ports()
                self._persist(task)
            del self.tasks[arn]
        if self.config.task_cleanup_wait_s <= 0:
            await self._remove_containers(task)

    async def _remove_containers(self, task: Task) -> None:
        for container in task.containers:
            if container.docker_id:
                await self.driver.remove(container.docker_id)
        await self._remove_task_volumes(task)

    async def _remove_task_volumes(self, task: Task) -> None:
        """Remove the task's own volumes; Docker keeps one that a container still uses (retried later)."""
        for name in task_volume_names(task, self._definition(task)):
            await self.driver.remove_volume(name)

    # -- recovery and resync

    async def _recover(self) -> None:
        now = self.clock()
        for task in self.store.live_tasks():
            self.tasks[task.arn] = task
            restore_holdings(self.allocator, task)
        self._save_ports()
        states = await self.driver.list_managed()
        by_name = {s.name: s for s in states}
        for task in list(self.tasks.values()):
            if task.desired_status == "STOPPED":
                if task.last_status is not TaskStatus.DEACTIVATING:  # draining ones are resumed by their owner
                    self._spawn(self._stop(task.arn))
                continue
            if task.last_status < TaskStatus.RUNNING:
                for container in task.containers:  # adopt what a crashed start already created
                    state = by_name.get(container.docker_name)
                    if state and state.labels.get(LABEL_TASK_ARN) == task.arn:
                        container.docker_id = state.id
                        self._apply_state(task, container, state)
                self._spawn(self._start(task.arn))
                continue
            for container in task.containers:
                state = by_name.get(container.docker_name)
                if state is None or state.labels.get(LABEL_TASK_ARN) != task.arn:
                    if container.last_status is not ContainerStatus.STOPPED:
                        container.last_status = ContainerStatus.STOPPED
                        container.reason = REASON_VANISHED
                else:
                    container.docker_id = state.id
                    self._apply_state(task, container, state)
            if any(c.essential and c.last_status is ContainerStatus.STOPPED for c in task.containers):
                task.request_stop(StopCode.ESSENTIAL_CONTAINER_EXITED.value, REASON_ESSENTIAL_EXITED, now)
                self._spawn(self._stop(task.arn))
            self._persist(task)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_interval_s)
            try:
                await self.resync()
            except DriverError as exc:
                log.warning("resync against Docker failed: %s", exc.message)

    async def resync(self) -> None:
        """Safety net behind the event stream: refresh live tasks, remove orphans and old containers."""
        now = self.clock()
        states = await self.driver.list_managed()
        seen: set[str] = set()
        for state in states:
            arn = state.labels.get(LABEL_TASK_ARN, "")
            if arn in self.tasks:
                continue
            seen.add(state.id)
            task = self.store.get_task(arn) if arn else None
            if task is not None and task.is_stopped:
                if now - task.timestamps.get("stoppedAt", now) >= self.config.task_cleanup_wait_s:
                    await self.driver.remove(state.id)
                    await self._remove_task_volumes(task)
                continue
            if task is not None:
                continue
            first_seen = self._orphans_seen.setdefault(state.id, now)
            if now - first_seen >= self.config.orphan_grace_s:
                log.warning("removing container %s: no task owns it", state.name)
                await self.driver.remove(state.id)
        self._orphans_seen = {k: v for k, v in self._orphans_seen.items() if k in seen}
        for arn, task in list(self.tasks.items()):
            if task.last_status >= TaskStatus.RUNNING or task.desired_status == "STOPPED":
                self._spawn(self._refresh(arn))


def _log_failure(work: asyncio.Task[None]) -> None:
    if not work.cancelled() and work.exception() is not None:
        log.error("agent work failed", exc_info=work.exception())
