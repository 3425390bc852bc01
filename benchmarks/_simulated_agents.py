"""Simulated agents for benchmarks/hosts.py: the agent protocol's four calls, without Docker.

Each ``SimulatedAgent`` talks to the control plane through a real
``portside.agent.http_link.HttpLink`` (its own aiohttp session and connections, requests signed
with SigV4) and behaves as ``portside agent`` does on the wire (docs/agent-protocol.md):

- RegisterContainerInstance as ``i-bench<k>`` at 10.250.x.y (nothing connects there);
- a Heartbeat every ``HEARTBEAT_S`` on a fixed schedule, starting at a random phase;
- PollAssignments from the last revision it saw, waiting ``POLL_WAIT_S``, again as soon as an
  answer arrives; the first long poll waits a random ``FIRST_POLL_WAIT_S`` so the polls of
  agents that registered together do not all expire at once (as for hosts started at
  different times);
- every task newly assigned RUNNING is answered at once with two SubmitTaskStateChange
  reports, PENDING then RUNNING with a networkBinding on a made-up host port, built by
  ``core.state_change.task_state_change`` (the agent's own report builder); a task wanted
  STOPPED is reported STOPPED. A 4xx is not retried, anything else after ``RETRY_S``.

``Fleet`` counts what all of them saw: heartbeats and polls answered, reports accepted, errors
by call, and for every task when its agent first held it and when its RUNNING report was
accepted.

Not a benchmark itself; hosts.py imports it from its own directory.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portside.agent.http_link import HttpLink
from portside.agent.link import LinkError, LinkRefused
from portside.agent.registration import registration
from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.state_change import task_state_change
from portside.core.task import Task

REGION = "us-east-1"
CLUSTER = "default"
HEARTBEAT_S = 5.0  # what portside's agent sends (config.DEFAULT_AGENT_HEARTBEAT_S)
POLL_WAIT_S = 20.0  # what portside's agent asks for (agent.agent.POLL_WAIT_S)
FIRST_POLL_WAIT_S = (5.0, 20.0)
RETRY_S = 0.5  # portside's agent starts its back-off here (agent.agent.RETRY_MIN_S)
INSTANCE_CPU = 2048
INSTANCE_MEMORY_MIB = 7680
RESERVED_TCP = [22, 2375, 2376, 51678, 51679]
FIRST_HOST_PORT = 32768


@dataclass
class Receipt:
    """When an agent first held a task in a poll answer."""

    wall: float
    mono: float
    created_at: float
    group: str


@dataclass
class Fleet:
    """What every simulated agent saw, counted in one place."""

    heartbeats: int = 0
    polls: int = 0
    reports: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    received: dict[str, Receipt] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)  # task ARN -> RUNNING report accepted (monotonic)
    running_in: dict[str, int] = field(default_factory=dict)  # task group -> tasks RUNNING
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def error(self, call: str, exc: Exception) -> None:
        key = f"{call}: {type(exc).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def started(self, task: Task) -> None:
        self.running[task.arn] = time.monotonic()
        self.running_in[task.group or ""] = self.running_in.get(task.group or "", 0) + 1
        self.changed.set()

    async def wait_until(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        """Until ``done()``, checked as tasks start; TimeoutError naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout:g} s waiting for {what} (agent errors: {self.errors or 'none'})"
                )
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass


class SimulatedAgent:
    def __init__(self, index: int, link: HttpLink, fleet: Fleet, rng: random.Random) -> None:
        self.index = index
        self.link = link
        self.fleet = fleet
        self.rng = rng
        self.address = f"10.250.{index // 250}.{index % 250 + 1}"
        self.instance_arn = ""
        self.revision: int | None = None
        self.next_port = FIRST_HOST_PORT
        self.answered: set[str] = set()
        self.stopped: set[str] = set()
        self.work: set[asyncio.Task[None]] = set()

    async def register(self) -> None:
        request = registration(
            cluster=CLUSTER, region=REGION, instance_id=f"i-bench{self.index:06d}", address=self.address,
            zone=None,
            docker_version="bench", cpu_units=INSTANCE_CPU, memory_mib=INSTANCE_MEMORY_MIB,
            reserved_tcp=RESERVED_TCP, reserved_udp=[], attributes={}, awsvpc=False,
        )
        answer = await self.link.register(request)
        self.instance_arn = answer["containerInstance"]["containerInstanceArn"]

    def start(self) -> None:
        for loop in (self._heartbeat_forever(), self._poll_forever()):
            self._spawn(loop)

    async def close(self) -> None:
        for work in list(self.work):
            work.cancel()
        await asyncio.gather(*self.work, return_exceptions=True)
        await self.link.close()

    def _spawn(self, coro: Any) -> None:
        work = asyncio.ensure_future(coro)
        self.work.add(work)
        work.add_done_callback(self.work.discard)

    async def _heartbeat_forever(self) -> None:
        next_at = time.monotonic() + self.rng.uniform(0, HEARTBEAT_S)
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += HEARTBEAT_S
            try:
                await self.link.heartbeat({"cluster": CLUSTER, "containerInstance": self.instance_arn})
            except LinkError as exc:
                self.fleet.error("Heartbeat", exc)
                continue
            self.fleet.heartbeats += 1

    async def _poll_forever(self) -> None:
        wait_s = self.rng.uniform(*FIRST_POLL_WAIT_S)
        while True:
            request: dict[str, Any] = {
                "cluster": CLUSTER, "containerInstance": self.instance_arn, "waitSeconds": wait_s,
            }
            if self.revision is not None:
                request["sinceRevision"] = self.revision
            try:
                answer = await self.link.poll_assignments(request)
            except LinkError as exc:
                self.fleet.error("PollAssignments", exc)
                await asyncio.sleep(RETRY_S)
                continue
            wall, mono = time.time(), time.monotonic()
            self.fleet.polls += 1
            if self.revision is not None:
                wait_s = POLL_WAIT_S
            self.revision = int(answer["revision"])
            for body in answer["tasks"]:
                self._assigned(body, wall, mono)

    def _assigned(self, body: dict[str, Any], wall: float, mono: float) -> None:
        task = Task.from_json(body)
        if task.desired_status == "RUNNING" and task.arn not in self.answered:
            self.answered.add(task.arn)
            self.fleet.received.setdefault(task.arn, Receipt(wall, mono, task.created_at, task.group or ""))
            self._spawn(self._start(task))
        elif task.desired_status == "STOPPED" and task.arn not in self.stopped and not task.is_stopped:
            self.stopped.add(task.arn)
            self._spawn(self._stop(task))

    async def _start(self, task: Task) -> None:
        """PENDING, then RUNNING with a binding on a made-up host port, as the agent reports a start."""
        now = time.time()
        task.last_status = TaskStatus.PENDING
        task.timestamps.update(pullStartedAt=now, pullStoppedAt=now)
        if not await self._submit(task):
            return
        for container in task.containers:
            container.last_status = ContainerStatus.RUNNING
            container.docker_id = f"{self.index:08x}{self.next_port:056x}"
            for plan in container.ports:
                if plan.dynamic:
                    plan.host_port, self.next_port = self.next_port, self.next_port + 1
            container.network_bindings = [
                {"bindIP": self.address, "containerPort": p.container_port, "hostPort": p.host_port,
                 "protocol": p.protocol}
                for p in container.ports
            ]
        task.last_status = TaskStatus.RUNNING
        task.timestamps["startedAt"] = time.time()
        if await self._submit(task):
            self.fleet.started(task)

    async def _stop(self, task: Task) -> None:
        for container in task.containers:
            container.last_status, container.exit_code = ContainerStatus.STOPPED, 0
        task.last_status = TaskStatus.STOPPED
        task.timestamps.update(executionStoppedAt=time.time(), stoppedAt=time.time())
        await self._submit(task)

    async def _submit(self, task: Task) -> bool:
        change = task_state_change(task)
        change["containerInstance"] = self.instance_arn
        while True:
            try:
                await self.link.submit_task_state_change(change)
            except LinkRefused as exc:
                self.fleet.error("SubmitTaskStateChange", exc)
                return False
            except LinkError as exc:
                self.fleet.error("SubmitTaskStateChange", exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.fleet.reports += 1
            return True
