"""The host agent: runs the tasks the control plane assigns to this host and reports what they do.

Theory of operation
-------------------
The agent talks to the control plane only through ``ControlLink`` (agent/link.py,
docs/agent-protocol.md), the same for the server's own host (in process) and every other host
(HTTP): it registers its host as a container instance, watches its assignments from a revision,
reports every change of a task, sends heartbeats, and reports its tasks' CPU and memory
(``agent/usage_reports.py``). It never reads the control plane's store.

A task it is given for the first time gets its host ports from this host's allocator, and is
kept on this host (``AgentState``, ``--state-dir``) before any ``docker create``. The agent then
drives it forward on its own: pull policy, create every container under a deterministic name,
start them in dependency order, read the real bindings back from Docker, RUNNING; and, when the
control plane wants it stopped (or an essential container exits), to STOPPED: SIGTERM,
stopTimeout, SIGKILL, ports released into quarantine.

All work on one task runs under that task's lock, so events, the resync loop, starts and stops
never interleave on it. The agent writes ``last_status`` and container facts; it asks for a stop
itself only when an essential container exits or the task cannot start (ECS's agent does the
same); ``core/state_change.py`` says who owns which fact.

Every step is safe to repeat after a crash: at start the agent reloads its own state, relists
its assignments (tasks no longer assigned are stopped), adopts containers by name and label,
resumes unfinished starts and stops, stops tasks whose containers vanished, and later removes
containers no task owns. When the control plane cannot be reached, the copies keep running and
reports wait until it can.
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
from portside.agent.link import ControlLink, LinkError, LinkRefused
from portside.agent.log_shipper import LogShipper, log_request, uses_awslogs
from portside.agent.ports import assign_ports, reassign_port, restore_holdings
from portside.agent.specs import build_spec, task_volume_names
from portside.agent.state import AgentState
from portside.agent.usage_reports import UsageReporter
from portside.config import AWSVPC_NETWORK_NAME, ServerConfig
from portside.core.dependencies import condition_met, dependencies, start_order
from portside.core.firewall import parse_sources
from portside.core.lifecycle import (
    REASON_ESSENTIAL_EXITED,
    REASON_OOM,
    REASON_PORTS_PREFIX,
    ContainerStatus,
    StopCode,
    TaskStatus,
)
from portside.core.ports import PortAllocator, PortRange
from portside.core.secret_refs import uses_secrets
from portside.core.state_change import apply_assignment, needs_host_ports, new_agent_task, task_state_change
from portside.core.task import Container, Task
from portside.errors import DriverError, NameConflict, PortAllocated, PortsExhausted
from portside.faults import crash_point

log = logging.getLogger("portside.agent")

DEPENDENCY_POLL_S = 0.25
# How long a container waits for a dependency that sets no startTimeout of its own.
DEFAULT_START_TIMEOUT_S = 180.0
MAX_BIND_RETRIES = 5
REASON_VANISHED = "Container was removed while it was expected to run"
REASON_UNASSIGNED = "Task is no longer assigned to this container instance"
# How long one assignment poll waits on the control plane for a change.
POLL_WAIT_S = 20.0
# Back-off between failed calls to the control plane.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 5.0
AWSVPC_CAPABILITY = "ecs.capability.task-eni"
# What a refusal says when the instance was deregistered (control/agent_protocol.py).
DEREGISTERED_MARK = "was deregistered"
# The agent's own loops (not work on a task).
LOOPS = frozenset({"watch", "report", "heartbeat", "resync", "usage"})


class HostAgent:
    def __init__(
        self,
        config: ServerConfig,
        link: ControlLink,
        driver: Driver,
        port_range: PortRange,
        state: AgentState,
        registration: dict[str, Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.link = link
        self.driver = driver
        self.clock = clock
        self.port_range = port_range
        self.state = state
        self.registration = registration
        self.cluster = str(registration["cluster"])
        settings = {
            "reserved_tcp": config.reserved_ports_tcp,
            "reserved_udp": config.reserved_ports_udp,
            "quarantine_s": config.port_quarantine_s,
        }
        if state.ports:
            self.allocator = PortAllocator.from_dict(state.ports, port_range, **settings)
        else:
            self.allocator = PortAllocator(port_range, **settings)
        self.tasks: dict[str, Task] = {arn: Task.from_json(body) for arn, body in state.tasks.items()}
        self._locks: dict[str, asyncio.Lock] = {}
        self._work: set[asyncio.Task[None]] = set()
        self._orphans_seen: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: dict[str, dict[str, Any]] = {}
        self._report_wake = asyncio.Event()
        self._link_error: str | None = None
        self._listed = False  # the whole list of assignments was read since this agent started
        # Values of the secrets of tasks about to start, as the control plane sent them: task ARN ->
        # {"environment": {container: {NAME: value}}} or {"failure": reason}. Memory only (never
        # in the state file, never logged); dropped once the task's containers exist.
        self._secrets: dict[str, dict[str, Any]] = {}
        self.on_change: list[Callable[[Task], None]] = []
        # Awaited before every ``docker start``: the host firewall brings its chain in step with the
        # agent's tasks (this one's host ports included), or raises FirewallError and the start fails.
        self.before_start: Callable[[], Awaitable[None]] | None = None
        # Called with the load balancers' source CIDRs the control plane sends (the firewall admits them).
        self.on_lb_sources: list[Callable[[tuple[str, ...]], None]] = []
        # Reads the running containers' CPU and memory and reports them (PublishMetrics).
        self.usage = UsageReporter(self)
        # Ships the output of awslogs containers to the control plane (cursors beside agent.json).
        self.logs = LogShipper(link, driver, state.path.parent)

    @property
    def instance_arn(self) -> str | None:
        return self.state.instance_arn

    def live_tasks(self) -> list[Task]:
        """The tasks this agent looks after (what its firewall guards): the same before and after a restart."""
        return list(self.tasks.values())

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
        """Register, learn the assignments, adopt what Docker runs, then watch, report and resync."""
        self._loop = asyncio.get_running_loop()
        if any(a.get("name") == AWSVPC_CAPABILITY for a in self.registration.get("attributes", [])):
            await self.driver.ensure_network(AWSVPC_NETWORK_NAME)
        try:
            await self._register()
            self._merge(await self._poll(since=None, wait_s=0.0))
            self._listed = True
            assert self.state.instance_arn is not None
            self._take_lb_sources(
                await self.link.heartbeat({"cluster": self.cluster, "containerInstance": self.state.instance_arn})
            )
        except LinkError as exc:  # keep running what this host runs; the watch retries
            self._link_failed(exc)
        await self._adopt()
        for task in list(self.tasks.values()):
            self._report(task)  # the control plane may have missed the last reports before a restart
        self.driver.watch_events(self._on_event_threadsafe)
        self._spawn(self._watch_forever(), "watch")
        self._spawn(self._report_forever(), "report")
        self._spawn(self._heartbeat_forever(), "heartbeat")
        self._spawn(self._resync_forever(), "resync")
        self._spawn(self.usage.run_forever(), "usage")

    async def close(self) -> None:
        await self.logs.close()
        for work in list(self._work):
            work.cancel()
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait for every start and stop in flight (for tests and orderly shutdown)."""
        while True:
            pending = [w for w in self._work if w.get_name() not in LOOPS]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    # -- the agent protocol

    async def _register(self) -> None:
        request = dict(self.registration)
        if self.state.instance_arn:
            request["containerInstanceArn"] = self.state.instance_arn
        answer = await self.link.register(request)
        arn = answer["containerInstance"]["containerInstanceArn"]
        if arn != self.state.instance_arn:
            self.state.instance_arn = arn
            self._listed = False  # a new registration: relist
            self._save()
        self._link_ok()

    async def _poll(self, since: int | None, wait_s: float) -> dict[str, Any]:
        """The assignments changed after revision ``since`` (None: the whole list)."""
        assert self.state.instance_arn is not None
        request: dict[str, Any] = {"cluster": self.cluster, "containerInstance": self.state.instance_arn, "waitSeconds": wait_s}
        if since is not None:
            request["sinceRevision"] = since
        answer = await self.link.poll_assignments(request)
        self._link_ok()
        return answer

    async def _watch_forever(self) -> None:
        backoff = RETRY_MIN_S
        while True:
            try:
                if self.state.instance_arn is None:
                    await self._register()
                batch = await self._poll(self.state.revision if self._listed else None, POLL_WAIT_S)
                self._listed = True
            except LinkRefused as exc:
                self._link_failed(exc)
                if DEREGISTERED_MARK in str(exc):  # DeregisterContainerInstance: keep the copies, stop asking
                    await asyncio.sleep(RETRY_MAX_S)
                    continue
                self.state.instance_arn = None  # e.g. a new control plane that never heard of it: register again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            except LinkError as exc:
                self._link_failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            backoff = RETRY_MIN_S
            for arn in self._merge(batch):
                self._drive(arn)

    async def _heartbeat_forever(self) -> None:
        interval = self.config.agent_heartbeat_s
        while True:
            await asyncio.sleep(interval)
            if self.state.instance_arn is None:
                continue
            try:
                answer = await self.link.heartbeat({"cluster": self.cluster, "containerInstance": self.state.instance_arn})
            except LinkError as exc:
                self._link_failed(exc)
                continue
            self._take_lb_sources(answer)
            given = answer.get("heartbeatSeconds")
            if isinstance(given, (int, float)) and not isinstance(given, bool) and 0.5 <= given <= 300:
                interval = float(given)  # the control plane's TTL decides how often it must hear from us

    def _take_lb_sources(self, answer: dict[str, Any]) -> None:
        """The load balancers the control plane says may reach this host's copies (for the firewall)."""
        sources = answer.get("lbSources")
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            return
        try:
            admitted = parse_sources(sources, "lbSources")  # never an unchecked string into iptables
        except ValueError as exc:
            log.warning("control plane: %s; keeping the load balancer sources admitted so far", exc)
            return
        for callback in self.on_lb_sources:
            callback(admitted)

    def _report(self, task: Task) -> None:
        self._reports[task.arn] = task_state_change(task)
        self._report_wake.set()

    async def _report_forever(self) -> None:
        """Send every task's latest state, in order of change, until the control plane has it."""
        backoff = RETRY_MIN_S
        while True:
            await self._report_wake.wait()
            self._report_wake.clear()
            while self._reports:
                arn, change = next(iter(self._reports.items()))
                try:
                    await self.link.submit_task_state_change(dict(change, containerInstance=self.state.instance_arn))
                except LinkRefused as exc:
                    log.warning("the control plane refused the state of task %s: %s", arn, exc)
                except LinkError as exc:
                    self._link_failed(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                backoff = RETRY_MIN_S
                if self._reports.get(arn) is change:
                    del self._reports[arn]

    def _link_failed(self, exc: Exception) -> None:
        if str(exc) != self._link_error:
            log.warning("control plane: %s (copies keep running; retrying)", exc)
        self._link_error = str(exc)

    def _link_ok(self) -> None:
        if self._link_error is not None:
            log.info("control plane reachable again")
        self._link_error = None

    def _merge(self, batch: dict[str, Any]) -> list[str]:
        """Fold an assignment batch into the agent's tasks; return the ARNs to drive."""
        now = self.clock()
        self.state.definitions.update(batch.get("taskDefinitions") or {})
        touched: list[str] = []
        listed: set[str] = set()
        for body in batch.get("tasks") or []:
            assigned = Task.from_json(body)
            listed.add(assigned.arn)
            local = self.tasks.get(assigned.arn)
            if local is None:
                if assigned.is_stopped or assigned.arn in self.state.stopped:
                    continue
                local = new_agent_task(assigned)
                self.tasks[local.arn] = local
                self._admit(local, now)
                touched.append(local.arn)
            elif assigned.is_stopped:
                local.request_stop(assigned.stop_code or StopCode.SERVICE_SCHEDULER_INITIATED.value,
                                   assigned.stopped_reason or REASON_UNASSIGNED, now)
                touched.append(local.arn)
            elif apply_assignment(local, assigned):
                touched.append(local.arn)
        if batch.get("complete"):
            for arn, task in self.tasks.items():
                if arn not in listed and task.request_stop(StopCode.SERVICE_SCHEDULER_INITIATED.value, REASON_UNASSIGNED, now):
                    touched.append(arn)
        for arn, secrets in (batch.get("secrets") or {}).items():
            if arn in self.tasks and not self.tasks[arn].is_stopped:
                self._secrets[arn] = secrets
                if arn not in touched:
                    touched.append(arn)  # a task that waited for its secrets starts now
        self.state.revision = int(batch.get("revision") or self.state.revision)
        for arn in touched:
            if arn in self.tasks:
                self._persist(self.tasks[arn])
        self._save()
        return touched

    def _admit(self, task: Task, now: float) -> None:
        """Choose the task's host ports on this host (or re-hold the ones it had before a restart).

        Port exhaustion does not raise: the task stops with ECS's HostConfigError reason.
        """
        if not needs_host_ports(task):
            restore_holdings(self.allocator, task)
            return
        try:
            assign_ports(self.allocator, task, now)
        except (PortsExhausted, ValueError) as exc:
            reason = REASON_PORTS_PREFIX + str(exc)
            for container in task.containers:
                container.last_status = ContainerStatus.STOPPED
                container.reason = reason
            task.request_stop(StopCode.TASK_FAILED_TO_START.value, reason, now)

    def _drive(self, arn: str) -> None:
        task = self.tasks.get(arn)
        if task is None:
            return
        if task.desired_status == "STOPPED":
            self._spawn(self._stop(arn))
        elif task.last_status < TaskStatus.RUNNING:
            self._spawn(self._start(arn))

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
        """Keep the task on this host, report it to the control plane, tell the local watchers."""
        if task.is_stopped:
            self.state.tasks.pop(task.arn, None)
            self._secrets.pop(task.arn, None)  # stopped before it started: its secrets are not needed
        else:
            self.state.tasks[task.arn] = task.to_json()
        self._save()
        self._report(task)
        for callback in self.on_change:
            callback(task)

    def _save(self) -> None:
        self.state.ports = self.allocator.to_dict()
        self.state.save()

    def _definition(self, task: Task) -> dict[str, Any]:
        content = self.state.definitions.get(task.task_definition_arn)
        if content is None:
            raise DriverError(f"task definition {task.task_definition_arn} was never sent to this agent")
        return content

    # -- starting

    async def _start(self, arn: str) -> None:
        async with self._lock(arn):
            task = self.tasks.get(arn)
            if task is None or task.desired_status == "STOPPED" or task.last_status >= TaskStatus.RUNNING:
                return
            content = self._definition(task)
            secrets = self._secrets.get(arn)
            if uses_secrets(content) and secrets is None and any(not c.docker_id for c in task.containers):
                return  # its secrets come with the control plane's next answer about it
            try:
                if secrets is not None and "failure" in secrets:
                    self._fail_start(task, str(secrets["failure"]))
                else:
                    await self._start_containers(task, content)
            except (DriverError, FirewallError) as exc:
                self._fail_start(task, f"CannotStartContainerError: {exc.message}")
            finally:
                self._secrets.pop(arn, None)  # the containers hold them now (or never will)
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
        secrets = (self._secrets.get(task.arn) or {}).get("environment", {}).get(container.name)
        spec = build_spec(task, container, definition, content, self.config.publish_ip, self.driver.owner, secrets)
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
        if uses_awslogs(definition):  # the stream must exist (or its group be creatable) before the start
            try:
                await self.logs.open(self._log_request(task, container))
            except DriverError as exc:
                container.reason = f"CannotStartContainerError: {exc.message}"  # as ECS shows it on the container
                raise
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
                self._save()
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
        if uses_awslogs(definition):
            self.logs.follow(container.docker_id, self._log_request(task, container))

    def _log_request(self, task: Task, container: Container) -> dict[str, Any]:
        return log_request(self.cluster, self.instance_arn, task.arn, container.name, container.docker_id)

    def _follow_logs(self, task: Task) -> None:
        """Ship the output of the task's awslogs containers from their cursors (after a restart)."""
        definition = self.state.definitions.get(task.task_definition_arn)
        if definition is None:
            return
        by_name = {d["name"]: d for d in definition["containerDefinitions"]}
        for container in task.containers:
            if container.docker_id and uses_awslogs(by_name.get(container.name, {})):
                self.logs.follow(container.docker_id, self._log_request(task, container))

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
            self.allocator.release(task.arn, now)
            del self.tasks[arn]
            self.state.stopped[arn] = {"at": now, "task": task.to_json()}
            self._persist(task)
        if self.config.task_cleanup_wait_s <= 0:
            await self._remove_containers(task)

    async def _remove_containers(self, task: Task) -> None:
        for container in task.containers:
            if container.docker_id:
                await self.logs.drain(container.docker_id)  # what it wrote last is shipped before it goes
                await self.driver.remove(container.docker_id)
        await self._remove_task_volumes(task)

    async def _remove_task_volumes(self, task: Task) -> None:
        """Remove the task's own volumes; Docker keeps one that a container still uses (retried later)."""
        for name in task_volume_names(task, self._definition(task)):
            await self.driver.remove_volume(name)

    # -- recovery and resync

    async def _adopt(self) -> None:
        """After a (re)start: match the tasks to what Docker runs, by name and label, and drive them on."""
        now = self.clock()
        for task in self.tasks.values():
            restore_holdings(self.allocator, task)
        self._save()
        states = await self.driver.list_managed()
        by_name = {s.name: s for s in states}
        for task in list(self.tasks.values()):
            if task.desired_status == "STOPPED":
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
        existing = {state.id for state in states}
        stopped = [Task.from_json(s["task"]) for s in self.state.stopped.values()]
        for task in [t for t in self.tasks.values() if t.last_status >= TaskStatus.RUNNING] + stopped:
            if any(c.docker_id in existing for c in task.containers):
                self._follow_logs(task)  # from the cursors: what was not shipped before the restart

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
            stopped = self.state.stopped.get(arn)
            if stopped is not None:
                if now - stopped["at"] >= self.config.task_cleanup_wait_s:
                    await self.logs.drain(state.id)
                    await self.driver.remove(state.id)
                    await self._remove_task_volumes(Task.from_json(stopped["task"]))
                continue
            first_seen = self._orphans_seen.setdefault(state.id, now)
            if now - first_seen >= self.config.orphan_grace_s:
                log.warning("removing container %s: no task owns it", state.name)
                await self.driver.remove(state.id)
        self._orphans_seen = {k: v for k, v in self._orphans_seen.items() if k in seen}
        self.logs.forget({state.id for state in states})
        left = {state.labels.get(LABEL_TASK_ARN, "") for state in states}
        done = [a for a, s in self.state.stopped.items() if a not in left and now - s["at"] >= self.config.task_cleanup_wait_s]
        if done:  # containers removed: forget the task, and definitions no task uses any more
            for arn in done:
                del self.state.stopped[arn]
            used = {t.task_definition_arn for t in self.tasks.values()}
            used |= {s["task"]["task_definition_arn"] for s in self.state.stopped.values()}
            self.state.definitions = {k: v for k, v in self.state.definitions.items() if k in used}
            self._save()
        for arn, task in list(self.tasks.items()):
            if task.last_status >= TaskStatus.RUNNING or task.desired_status == "STOPPED":
                self._spawn(self._refresh(arn))


def _log_failure(work: asyncio.Task[None]) -> None:
    if not work.cancelled() and work.exception() is not None:
        log.error("agent work failed", exc_info=work.exception())
