"""The control plane's load from many agents: N simulated hosts speaking the agent protocol (issue 11).

Run: ``python benchmarks/hosts.py [--agents 10,100,1000] [--idle-seconds 20] [--runs 30]
[--service-tasks 500] [--seed 1] [--profile DIR]`` (no Docker needed; only 127.0.0.1 traffic).

Goal (issue 11): 1,000 agents on one 2-core control plane with p99 assignment latency under
100 ms. Exit status 1 when a run fails or the largest N misses the goal.

What runs
---------
Control plane
    For each N a fresh one in a child process (``benchmarks/_control_plane.py``): the SQLite
    store, ControlPlane, ServiceController and ApiServer as ``portside server`` wires them, on
    uvloop, SigV4 checked against a credentials file for every caller (``--auth always``, as
    for agents on other hosts). Not started: the server's own Docker agent, the load
    balancer, the scaler, the doctor. So the child's CPU time is the control plane's work for
    agents and API callers only, and the benchmark needs no Docker.

Agents
    N simulated agents in this process, on one uvloop event loop. Each is a real
    ``portside.agent.http_link.HttpLink`` (its own aiohttp session and connections, requests
    signed by botocore with the ``[agents]`` profile's key) making the protocol's four calls
    (docs/agent-protocol.md) as ``portside agent`` makes them: RegisterContainerInstance as
    ``i-bench<k>`` at 10.250.x.y (nothing connects there); a Heartbeat every 5 s on a fixed
    schedule with a random phase; PollAssignments from the last revision with waitSeconds 20
    (the first long poll waits a random 5-20 s, so expiries spread as for hosts started at
    different times), re-polling as soon as an answer arrives. Every newly assigned task is
    answered at once with two SubmitTaskStateChange reports, PENDING then RUNNING with a
    networkBinding on a made-up host port (built by ``core.state_change.task_state_change``,
    the agent's own report builder); a task wanted STOPPED is reported STOPPED. No Docker.

Phases and figures, per N
-------------------------
register
    All N registrations, at most ``REGISTER_CONCURRENCY`` at once: registrations/s.
idle
    ``--idle-seconds`` of heartbeats and idle long polls only. **CPU per heartbeat** = the
    child's CPU time (utime + stime, /proc/PID/stat) over the window / heartbeats answered in
    it; it also carries the idle polls (N/20 per second) and the service controller's 1 s
    resync, so it is an upper bound of a heartbeat's own cost. Also the child's share of one
    core, and heartbeats/s against the expected N/5.
RunTask
    ``--runs`` RunTask calls of count 10 (spread by instanceId: ten agents per call), one after
    another from a boto3 client. **Assignment latency** per task: from the placement commit to
    the agent holding the task in a poll answer, two ways: from the task's ``createdAt``
    (stamped on the control plane's clock while placing, just before the commit; the same
    host's clock, so wall times compare) and from RunTask's answer arriving at the caller
    (time.monotonic in this process; a poll answer can overtake it, so this one can be
    slightly negative). p50/p99 of both. **Placements/s** (RunTask): tasks / (first RunTask
    sent -> the last task's RUNNING report accepted).
service
    CreateService with desiredCount 0, then UpdateService to ``--service-tasks``: seconds
    until every task's RUNNING report was accepted, **placements/s**, and the assignment
    latency from ``createdAt`` of those tasks (the service controller places them in batches).

Peers and references
--------------------
ECS
    ECS's agent keeps one WebSocket to ACS per host; ACS sends it heartbeats and the agent
    reconnects when none came for 1 min plus up to 1 min of jitter (``heartbeatTimeout`` and
    ``heartbeatJitter`` in aws/amazon-ecs-agent ``agent/acs/handler/acs_handler.go``,
    https://github.com/aws/amazon-ecs-agent/blob/master/agent/acs/handler/acs_handler.go); ECS
    shows a stopped instance's agent disconnected "within a few minutes"
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-versions.html).
    portside's agents heartbeat every 5 s (TTL 15 s): 12x the messages of a 60 s heartbeat,
    the price of noticing a dead host in 15 s; the table shows what one costs.
Nomad
    HashiCorp's published cluster-wide scheduling rates: C1M, 1,000,000 containers on 5,000
    hosts by 5 servers at 3,750 placements/s (https://www.hashicorp.com/c1m); C2M, 2,000,000 on
    6,100 hosts by 3 servers at about 1,500/s (https://www.hashicorp.com/c2m). Real clusters
    with consensus and real container starts, many cores per server: context, not like for
    like with one Python process on 2 cores.

Caveats
    The agents share the machine's 2 cores with the control plane (and with whatever else
    runs); their own event loop's delays count against portside, so the latencies are
    pessimistic. The agent process's CPU share is printed so a saturated simulator shows.
    Everything the script starts (child process, connections, temp dir) is stopped and removed
    on exit, including after Ctrl-C or an error; every phase has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from portside import open_file_limit
from portside.agent.http_link import HttpLink, profile_credentials
from portside.agent.link import LinkError, LinkRefused
from portside.agent.registration import registration
from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.state_change import task_state_change
from portside.core.task import Task

REGION = "us-east-1"
CLUSTER = "default"
GOAL_AGENTS = 1_000
GOAL_P99_MS = 100.0
HEARTBEAT_S = 5.0  # what portside's agent sends (config.DEFAULT_AGENT_HEARTBEAT_S)
POLL_WAIT_S = 20.0  # what portside's agent asks for (agent.agent.POLL_WAIT_S)
FIRST_POLL_WAIT_S = (5.0, 20.0)
RETRY_S = 0.5
ECS_HEARTBEAT_TIMEOUT_S = 60.0  # aws/amazon-ecs-agent acs_handler.go heartbeatTimeout (+ up to 60 s jitter)
NOMAD_PUBLISHED = "1,500-3,750"
RUN_TASK_COUNT = 10  # ECS's limit on RunTask's count
REGISTER_CONCURRENCY = 50
INSTANCE_CPU = 2048
INSTANCE_MEMORY_MIB = 7680
TASK_MEMORY_MIB = 16
CONTAINER_PORT = 80
FIRST_HOST_PORT = 32768
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
PHASE_TIMEOUT_S = 120.0
AGENT_PROFILE = "agents"
CALLER_PROFILE = "bench"
# The only keys the control plane accepts (it checks every signature, as for agents on other hosts).
KEYS = {AGENT_PROFILE: ("AKIDBENCHAGENTS", "agents-secret"), CALLER_PROFILE: ("AKIDBENCHCALLER", "caller-secret")}


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- the control plane


class ControlPlaneProcess:
    """benchmarks/_control_plane.py in a child process; its CPU time read from /proc."""

    def __init__(self, state_dir: Path, credentials: Path, profile: Path | None) -> None:
        self.state_dir = state_dir
        self.credentials = credentials
        self.profile = profile
        self.log_path = state_dir / "control-plane.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        argv = [sys.executable, str(Path(__file__).with_name("_control_plane.py")),
                "--state-dir", str(self.state_dir), "--credentials", str(self.credentials)]
        if self.profile is not None:
            argv += ["--profile", str(self.profile)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), START_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise BenchError(f"the control plane did not start within {START_TIMEOUT_S:g} s:\n{self.log_tail()}") from None
        try:
            self.port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"the control plane exited with {self.proc.poll()}:\n{self.log_tail()}") from None

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # it stops when stdin closes
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def write_credentials(path: Path) -> None:
    """An AWS shared-credentials file: a key for the agents and one for this script's API calls."""
    path.write_text("".join(
        f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n" for name, (key, secret) in KEYS.items()
    ))
    path.chmod(0o600)


# --------------------------------------------------------------------------- the agents


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
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def error(self, call: str, exc: Exception) -> None:
        key = f"{call}: {type(exc).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1

    async def wait_until(self, what: str, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"timed out after {timeout:g} s waiting for {what} (agent errors: {self.errors or 'none'})")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except asyncio.TimeoutError:
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
            cluster=CLUSTER, region=REGION, instance_id=f"i-bench{self.index:06d}", address=self.address, zone=None,
            docker_version="bench", cpu_units=INSTANCE_CPU, memory_mib=INSTANCE_MEMORY_MIB,
            reserved_tcp=[22, 2375, 2376, 51678, 51679], reserved_udp=[], attributes={}, awsvpc=False,
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
            request: dict[str, Any] = {"cluster": CLUSTER, "containerInstance": self.instance_arn, "waitSeconds": wait_s}
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
                {"bindIP": self.address, "containerPort": p.container_port, "hostPort": p.host_port, "protocol": p.protocol}
                for p in container.ports
            ]
        task.last_status = TaskStatus.RUNNING
        task.timestamps["startedAt"] = time.time()
        if await self._submit(task):
            self.fleet.running[task.arn] = time.monotonic()
            self.fleet.changed.set()

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


# --------------------------------------------------------------------------- one N


@dataclass
class Result:
    agents: int
    register_per_s: float = 0.0
    idle_s: float = 0.0
    idle_cpu_s: float = 0.0
    idle_heartbeats: int = 0
    idle_polls: int = 0
    agents_cpu_share: float = 0.0
    run_latency_ms: list[float] = field(default_factory=list)  # from createdAt
    run_return_ms: list[float] = field(default_factory=list)  # from RunTask's answer
    run_call_ms: list[float] = field(default_factory=list)
    run_tasks: int = 0
    run_per_s: float = 0.0
    service_tasks: int = 0
    service_s: float = 0.0
    service_latency_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_us_per_heartbeat(self) -> float:
        return self.idle_cpu_s / self.idle_heartbeats * 1e6 if self.idle_heartbeats else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (no interpolation: p99 of 100 samples is the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))]


def _task_definition() -> dict[str, Any]:
    return {
        "family": "hosts-bench",
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "web", "image": "portside.invalid/hosts-bench", "essential": True,
            "memoryReservation": TASK_MEMORY_MIB,
            "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": 0, "protocol": "tcp"}],
        }],
    }


class Caller:
    """This script's own API calls (boto3, the [bench] profile), on a thread so the agents' loop runs on."""

    def __init__(self, endpoint: str) -> None:
        key, secret = KEYS[CALLER_PROFILE]
        self.ecs = boto3.client(
            "ecs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, read_timeout=60),
        )

    async def call(self, name: str, **params: Any) -> tuple[dict[str, Any], float, float]:
        """The answer, and when the call was sent and its answer came (time.monotonic)."""

        def timed() -> tuple[dict[str, Any], float, float]:
            sent = time.monotonic()
            answer = getattr(self.ecs, name)(**params)
            return answer, sent, time.monotonic()

        return await asyncio.to_thread(timed)


async def measure(n: int, args: argparse.Namespace, work_dir: Path) -> Result:
    result = Result(n)
    credentials = work_dir / "credentials"
    write_credentials(credentials)
    profile = args.profile / f"control-plane-{n}.pstats" if args.profile else None
    plane = ControlPlaneProcess(work_dir, credentials, profile)
    fleet = Fleet()
    rng = random.Random(args.seed)
    agents: list[SimulatedAgent] = []
    key = profile_credentials(str(credentials), AGENT_PROFILE)
    try:
        await plane.start()
        caller = Caller(plane.endpoint)
        agents = [SimulatedAgent(i, HttpLink([plane.endpoint], key, REGION), fleet, rng) for i in range(n)]

        # register
        gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def register(agent: SimulatedAgent) -> None:
            async with gate:
                await agent.register()

        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(register(a) for a in agents)), PHASE_TIMEOUT_S)
        result.register_per_s = n / (time.monotonic() - t0)
        for agent in agents:
            agent.start()
        print(f"  N={n:<5} registered {n} agents ({result.register_per_s:,.0f}/s)", flush=True)

        # idle: heartbeats and long polls only
        await asyncio.sleep(HEARTBEAT_S)  # every agent's heartbeat schedule under way
        cpu0, beats0, polls0, wall0 = plane.cpu_seconds(), fleet.heartbeats, fleet.polls, time.monotonic()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(args.idle_seconds)
        result.idle_s = time.monotonic() - wall0
        result.idle_cpu_s = plane.cpu_seconds() - cpu0
        result.idle_heartbeats = fleet.heartbeats - beats0
        result.idle_polls = fleet.polls - polls0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        result.agents_cpu_share = (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime) / result.idle_s
        print(f"  N={n:<5} idle {result.idle_s:.1f} s: {result.idle_heartbeats} heartbeats, "
              f"control plane {result.idle_cpu_s:.2f} CPU s", flush=True)

        # RunTask loop
        taskdef = (await caller.call("register_task_definition", **_task_definition()))[0]["taskDefinition"]
        returned: dict[str, float] = {}
        first_sent = 0.0
        spread = [{"type": "spread", "field": "instanceId"}]
        for k in range(args.runs):
            answer, sent, back = await caller.call(
                "run_task", cluster=CLUSTER, taskDefinition=taskdef["taskDefinitionArn"], count=RUN_TASK_COUNT,
                placementStrategy=spread, startedBy="hosts-bench",
            )
            if answer.get("failures"):
                raise BenchError(f"RunTask failed to place: {answer['failures'][:3]}")
            first_sent = first_sent or sent
            result.run_call_ms.append((back - sent) * 1e3)
            for task in answer["tasks"]:
                returned[task["taskArn"]] = back
        await fleet.wait_until(f"{len(returned)} RunTask tasks RUNNING",
                               lambda: all(a in fleet.running for a in returned), PHASE_TIMEOUT_S)
        result.run_tasks = len(returned)
        result.run_per_s = len(returned) / (max(fleet.running[a] for a in returned) - first_sent)
        for arn, back in returned.items():
            receipt = fleet.received[arn]
            result.run_latency_ms.append((receipt.wall - receipt.created_at) * 1e3)
            result.run_return_ms.append((receipt.mono - back) * 1e3)
        print(f"  N={n:<5} RunTask: {result.run_tasks} tasks RUNNING, {result.run_per_s:,.0f}/s", flush=True)

        # a service scaled from 0
        if args.service_tasks:
            group = "service:hosts-bench"
            await caller.call("create_service", cluster=CLUSTER, serviceName="hosts-bench",
                              taskDefinition=taskdef["taskDefinitionArn"], desiredCount=0)
            _, sent, _ = await caller.call("update_service", cluster=CLUSTER, service="hosts-bench",
                                           desiredCount=args.service_tasks)

            def service_running() -> list[str]:
                return [a for a, r in fleet.received.items() if r.group == group and a in fleet.running]

            await fleet.wait_until(f"{args.service_tasks} service tasks RUNNING",
                                   lambda: len(service_running()) >= args.service_tasks, PHASE_TIMEOUT_S)
            arns = service_running()
            result.service_tasks = len(arns)
            result.service_s = max(fleet.running[a] for a in arns) - sent
            result.service_latency_ms = [(fleet.received[a].wall - fleet.received[a].created_at) * 1e3 for a in arns]
            print(f"  N={n:<5} service 0 -> {args.service_tasks}: {result.service_s:.2f} s", flush=True)
        result.errors = dict(fleet.errors)
        return result
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
        await asyncio.to_thread(plane.stop)


# --------------------------------------------------------------------------- report


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    print(f"Idle load ({args.idle_seconds:g} s of heartbeats every {HEARTBEAT_S:g} s and {POLL_WAIT_S:g} s long polls only):")
    head = (f"{'agents':>6}  {'reg/s':>7}  {'beats/s':>7}  {'expected':>8}  {'CP CPU %':>8}  {'CPU µs/beat':>11}  "
            f"{'agents CPU %':>12}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.agents:>6}  {r.register_per_s:>7,.0f}  {r.idle_heartbeats / r.idle_s:>7.1f}  {r.agents / HEARTBEAT_S:>8.1f}  "
              f"{r.idle_cpu_s / r.idle_s * 100:>8.1f}  {r.cpu_us_per_heartbeat:>11,.0f}  {r.agents_cpu_share * 100:>12.1f}")
    print(f"peer: ECS's agent and ACS exchange a heartbeat within {ECS_HEARTBEAT_TIMEOUT_S:g} s (+ up to 60 s jitter) "
          "on one WebSocket per host;")
    print(f"      portside's agents send one every {HEARTBEAT_S:g} s, i.e. {ECS_HEARTBEAT_TIMEOUT_S / HEARTBEAT_S:g}x as many.")
    print()
    print(f"Assignment latency (ms, placement commit -> the agent holds the task) and placements/s end to end:")
    head = (f"{'agents':>6}  {'RunTask p50':>11}  {'p99':>6}  {'max':>6}  {'(from answer p50':>16}  {'p99)':>6}  "
            f"{'RunTask ms p50':>14}  {'tasks':>5}  {'placed/s':>8}  {'service':>7}  {'s':>6}  {'placed/s':>8}  "
            f"{'p50':>6}  {'p99':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        service = (f"{r.service_tasks:>7}  {r.service_s:>6.2f}  {r.service_tasks / r.service_s:>8,.0f}  "
                   f"{percentile(r.service_latency_ms, 50):>6.1f}  {percentile(r.service_latency_ms, 99):>6.1f}"
                   if r.service_tasks else f"{'-':>7}")
        print(f"{r.agents:>6}  {percentile(r.run_latency_ms, 50):>11.1f}  {percentile(r.run_latency_ms, 99):>6.1f}  "
              f"{max(r.run_latency_ms):>6.1f}  {percentile(r.run_return_ms, 50):>16.1f}  {percentile(r.run_return_ms, 99):>6.1f}  "
              f"{percentile(r.run_call_ms, 50):>14.1f}  {r.run_tasks:>5}  {r.run_per_s:>8,.0f}  {service}")
    print(f"peer: Nomad's published cluster-wide scheduling rate is {NOMAD_PUBLISHED} placements/s "
          "(C2M, C1M: many-core servers, real containers; context, not like for like)")
    errors = {k: v for r in results for k, v in r.errors.items()}
    if errors:
        print(f"agent call errors: {errors}")
    print()
    largest = max(results, key=lambda r: r.agents)
    worst = max(percentile(largest.run_latency_ms, 99),
                percentile(largest.service_latency_ms, 99) if largest.service_latency_ms else 0.0)
    if largest.agents < GOAL_AGENTS:
        print(f"goal: {GOAL_AGENTS:,} agents, p99 assignment latency < {GOAL_P99_MS:g} ms -> not assessed "
              f"(largest N {largest.agents:,}; its worst p99 {worst:.1f} ms)")
        return True
    met = worst < GOAL_P99_MS
    print(f"goal: {GOAL_AGENTS:,} agents, p99 assignment latency < {GOAL_P99_MS:g} ms -> {largest.agents:,} agents, "
          f"worst p99 {worst:.1f} ms: {'met' if met else 'NOT MET'}")
    return met


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", default="10,100,1000", help="comma-separated N (default 10,100,1000)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="the idle window (default 20)")
    parser.add_argument("--runs", type=int, default=30, help=f"RunTask calls of count {RUN_TASK_COUNT} per N (default 30)")
    parser.add_argument("--service-tasks", type=int, default=500, help="a service scaled 0 -> this (default 500; 0: skip)")
    parser.add_argument("--seed", type=int, default=1, help="heartbeat phases and first poll waits (default 1)")
    parser.add_argument("--profile", type=Path, help="write the control plane's cProfile statistics into this directory")
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.agents.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--agents: comma-separated whole numbers, got {args.agents!r}")
    if not counts or min(counts) < RUN_TASK_COUNT:
        parser.error(f"--agents: every N must be at least {RUN_TASK_COUNT} (RunTask spreads {RUN_TASK_COUNT} tasks over distinct agents)")
    if args.idle_seconds < HEARTBEAT_S or args.runs < 1 or args.service_tasks < 0:
        parser.error(f"--idle-seconds must be at least {HEARTBEAT_S:g}, --runs at least 1, --service-tasks 0 or more")
    capacity = min(counts) * (INSTANCE_MEMORY_MIB // TASK_MEMORY_MIB)
    if args.runs * RUN_TASK_COUNT + args.service_tasks > capacity:
        parser.error(f"--runs x {RUN_TASK_COUNT} + --service-tasks must fit {capacity} tasks on {min(counts)} agents")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    open_file_limit.raise_to_hard()  # two connections per agent
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}; "
          f"agents at {', '.join(map(str, counts))}")
    results: list[Result] = []
    failed = False
    for n in counts:
        work_dir = Path(tempfile.mkdtemp(prefix=f"portside-hosts-{n}-"))
        try:
            results.append(runner(measure(n, args, work_dir)))
        except KeyboardInterrupt:
            failed = True
            print("\ninterrupted; cleaned up", file=sys.stderr)
            break
        except (BenchError, LinkError, asyncio.TimeoutError) as exc:
            failed = True
            print(f"\nN={n} failed: {exc or type(exc).__name__}", file=sys.stderr)
            log = work_dir / "control-plane.log"
            if log.exists():
                print(f"--- control plane log (tail) ---\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            break
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    if results:
        met = report(results, args)
        failed = failed or not met
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
