"""The control plane's load from many agents: N simulated hosts on the agent protocol (issue 11).

Run: ``python benchmarks/hosts.py [--agents 10,100,1000] [--idle-seconds 20] [--runs 30]
[--service-tasks 500] [--loaded-idle-seconds 10] [--seed 1] [--profile DIR]``. No Docker
needed; all traffic on 127.0.0.1. A full run takes 3-4 minutes on 2 busy cores; ``--agents
10,100 --idle-seconds 5 --runs 5 --service-tasks 50 --loaded-idle-seconds 0`` about 30 s.

Goal (issue 11): 1,000 agents on one 2-core control plane with p99 assignment latency under
100 ms. Exit status 1 when a run fails, or when N >= 1,000 was measured and missed the goal.

What runs
---------
Control plane (``benchmarks/_control_plane.py``)
    For each N a fresh one in a child process: the SQLite store, ControlPlane,
    ServiceController and ApiServer as ``portside server`` wires them, on uvloop, with every
    signature checked against a credentials file (``--auth always``, as for agents on other
    hosts). Not started: the server's own Docker agent, the load balancer, the scaler, the
    doctor. The child's CPU time is the control plane's work for agents and API calls only.
Agents (``benchmarks/_simulated_agents.py``)
    N simulated agents in this process on one uvloop event loop, each with its own real
    ``HttpLink`` (own aiohttp session and connections, SigV4 with the ``[agents]`` key):
    RegisterContainerInstance at 10.250.x.y, a Heartbeat every 5 s (random phase), a
    PollAssignments long poll of 20 s from the last revision, re-polled at once; every new
    task answered at once with SubmitTaskStateChange PENDING, then RUNNING with a
    networkBinding on a made-up host port. No Docker.
This script's own ECS calls
    ECS's JSON requests as boto3 sends them, SigV4-signed by botocore, made with aiohttp on the
    agents' event loop (a boto3 call on a thread delayed the agents' poll answers by GIL
    hand-overs of up to the 5 ms switch interval).

Phases and figures, per N
-------------------------
register
    All N registrations, at most ``REGISTER_CONCURRENCY`` at once: registrations/s.
idle
    ``--idle-seconds`` of heartbeats and idle long polls only. **CPU per heartbeat**: the
    child's CPU time (utime + stime from /proc) over the window / heartbeats answered in it.
    It also carries the idle polls (N/20 a second) and the service controller's 1 s resync,
    so it bounds a heartbeat's own cost from above (and /proc counts in 10 ms ticks: at N=10
    the figure is coarse). Also: the child's share of one core, heartbeats/s against the
    expected N/5, poll answers/s, and this process's CPU share (a saturated simulator would
    show there). A window of ``--loaded-idle-seconds`` at the end, once every task of the
    RunTask and service phases runs, shows what live tasks cost the control plane at rest.
RunTask
    ``--runs`` RunTask calls of count 10 (spread by instanceId: ten agents per call), one after
    another. **Assignment latency** of every task: placement commit -> its agent holds it in
    a poll answer, counted two ways: from the task's ``createdAt`` (stamped by the control
    plane while placing, just before the commit; same host, so wall clocks compare), and from
    RunTask's answer reaching this script (time.monotonic; a poll answer may overtake it).
    **Placements/s**: tasks / (first RunTask sent -> the last RUNNING report accepted), and
    the control plane's CPU time per task over that span (RunTask, poll answers, two reports),
    and this process's CPU share over it.
service
    CreateService with desiredCount 0, then UpdateService to ``--service-tasks``: seconds until
    every RUNNING report was accepted, **placements/s**, the latency from ``createdAt``, and the
    control plane's CPU time per task.

Peers and references
--------------------
ECS
    ECS's agent keeps one WebSocket to ACS per host; ACS heartbeats on it, and the agent
    reconnects when none came for 1 min plus up to 1 min of jitter (``heartbeatTimeout``,
    ``heartbeatJitter`` in aws/amazon-ecs-agent ``agent/acs/handler/acs_handler.go``,
    https://github.com/aws/amazon-ecs-agent/blob/master/agent/acs/handler/acs_handler.go); a
    stopped instance shows its agent disconnected "within a few minutes"
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-versions.html).
    portside's agents heartbeat every 5 s (TTL 15 s): 12x the messages of one a minute, the
    price of noticing a lost host in 15 s. The table shows what each one costs.
Nomad
    HashiCorp's published cluster-wide scheduling rates: C1M, 1,000,000 containers on 5,000
    hosts by 5 servers at 3,750 placements/s (https://www.hashicorp.com/c1m); C2M, 2,000,000
    on 6,100 hosts by 3 servers at about 1,500/s (https://www.hashicorp.com/c2m). Real
    clusters with consensus and real container starts on many-core servers: context, not
    like for like with one Python process on 2 cores.

Caveats
    The agents share the 2 cores with the control plane (and whatever else runs): their own
    event loop's delays count against portside, so the latencies are pessimistic. Everything
    the script starts (child process, connections, temp dirs) is stopped and removed on exit,
    Ctrl-C and errors included (the child also stops by itself when this process's pipe to it
    closes); every phase has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _control_plane import (
    AGENT_PROFILE,
    CALLER_PROFILE,
    KEYS,
    ControlPlaneError,
    ControlPlaneProcess,
    write_credentials,
)
from _simulated_agents import (
    CLUSTER,
    HEARTBEAT_S,
    INSTANCE_MEMORY_MIB,
    POLL_WAIT_S,
    REGION,
    Fleet,
    SimulatedAgent,
)
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from portside import open_file_limit
from portside.agent.http_link import HttpLink, profile_credentials
from portside.agent.link import LinkError
from portside.api.ecs import TARGET_PREFIX as ECS_TARGET_PREFIX

GOAL_AGENTS = 1_000
GOAL_P99_MS = 100.0
ECS_HEARTBEAT_TIMEOUT_S = 60.0  # aws/amazon-ecs-agent acs_handler.go heartbeatTimeout (+ up to 60 s jitter)
NOMAD_PUBLISHED = "1,500-3,750"
RUN_TASK_COUNT = 10  # ECS's limit on RunTask's count
REGISTER_CONCURRENCY = 50
TASK_MEMORY_MIB = 16
CONTAINER_PORT = 80
PHASE_TIMEOUT_S = 120.0
SERVICE_NAME = "hosts-bench"


class BenchError(RuntimeError):
    pass


@dataclass
class Idle:
    """One window of heartbeats and idle long polls only."""

    seconds: float
    cpu_s: float  # the control plane's
    heartbeats: int
    polls: int
    agents_cpu_share: float  # this process's

    @property
    def cpu_us_per_heartbeat(self) -> float:
        return self.cpu_s / self.heartbeats * 1e6 if self.heartbeats else float("nan")


@dataclass
class Result:
    agents: int
    register_per_s: float = 0.0
    idle: Idle | None = None  # before any task
    loaded_idle: Idle | None = None  # again once the RunTask and service tasks all run
    live_tasks: int = 0
    run_latency_ms: list[float] = field(default_factory=list)  # from createdAt
    run_return_ms: list[float] = field(default_factory=list)  # from RunTask's answer
    run_call_ms: list[float] = field(default_factory=list)
    run_tasks: int = 0
    run_per_s: float = 0.0
    run_cpu_s: float = 0.0  # the control plane's, from the first RunTask to the last RUNNING report
    run_agents_cpu_share: float = 0.0  # this process's, over the same span
    service_tasks: int = 0
    service_s: float = 0.0
    service_latency_ms: list[float] = field(default_factory=list)
    service_cpu_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (no interpolation: p99 of 100 samples is the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(len(ordered) * q / 100))) - 1]


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
    """This script's own ECS calls (the [bench] profile's key), made on the agents' event loop.

    The same JSON 1.1 requests boto3 sends, signed by botocore's SigV4 as HttpLink signs, sent with
    aiohttp: no thread, so no GIL hand-over delays the agents' poll answers (a boto3 call on a
    thread did, by up to the 5 ms switch interval each time it parsed an answer).
    """

    def __init__(self, endpoint: str) -> None:
        self.url = endpoint + "/"
        self.credentials = Credentials(*KEYS[CALLER_PROFILE])
        self.session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, action: str, params: dict[str, Any]) -> tuple[dict[str, Any], float, float]:
        """The answer, and when the call was sent and its answer came (time.monotonic)."""
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PHASE_TIMEOUT_S))
        body = json.dumps(params).encode()
        request = AWSRequest(method="POST", url=self.url, data=body, headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": ECS_TARGET_PREFIX + action,
        })
        SigV4Auth(self.credentials, "ecs", REGION).add_auth(request)
        sent = time.monotonic()
        async with self.session.post(self.url, data=body, headers=dict(request.headers.items())) as reply:
            text = await reply.read()
        back = time.monotonic()
        if reply.status != 200:
            raise BenchError(f"{action}: HTTP {reply.status}: {text[:300].decode('utf-8', 'replace')}")
        return json.loads(text), sent, back


# --------------------------------------------------------------------------- the phases of one N


async def register_all(agents: list[SimulatedAgent], result: Result) -> None:
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def register(agent: SimulatedAgent) -> None:
        async with gate:
            await agent.register()

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(register(a) for a in agents)), PHASE_TIMEOUT_S)
    result.register_per_s = len(agents) / (time.monotonic() - t0)
    for agent in agents:
        agent.start()


def _own_cpu_seconds() -> float:
    """This process's CPU time: the simulated agents' (and this script's calls)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def idle(plane: ControlPlaneProcess, fleet: Fleet, seconds: float) -> Idle:
    """Heartbeats and long polls only: the control plane's CPU time per heartbeat answered."""
    await asyncio.sleep(HEARTBEAT_S)  # every agent's heartbeat schedule under way, the last reports in
    cpu0, beats0, polls0, wall0 = plane.cpu_seconds(), fleet.heartbeats, fleet.polls, time.monotonic()
    own0 = _own_cpu_seconds()
    await asyncio.sleep(seconds)
    own1 = _own_cpu_seconds()
    elapsed = time.monotonic() - wall0
    return Idle(elapsed, plane.cpu_seconds() - cpu0, fleet.heartbeats - beats0, fleet.polls - polls0,
                (own1 - own0) / elapsed)


async def run_tasks(
    plane: ControlPlaneProcess, caller: Caller, fleet: Fleet, taskdef_arn: str, runs: int, result: Result
) -> None:
    """RunTask of count 10 in a loop; latency of every task, and placements/s until all are RUNNING."""
    returned: dict[str, float] = {}  # task ARN -> when its RunTask answer came
    first_sent = 0.0
    cpu0, own0, wall0 = plane.cpu_seconds(), _own_cpu_seconds(), time.monotonic()
    for _ in range(runs):
        answer, sent, back = await caller.call("RunTask", {
            "cluster": CLUSTER, "taskDefinition": taskdef_arn, "count": RUN_TASK_COUNT,
            "placementStrategy": [{"type": "spread", "field": "instanceId"}], "startedBy": "hosts-bench",
        })
        if answer.get("failures"):
            raise BenchError(f"RunTask could not place every task: {answer['failures'][:3]}")
        first_sent = first_sent or sent
        result.run_call_ms.append((back - sent) * 1e3)
        returned.update((task["taskArn"], back) for task in answer["tasks"])
    await fleet.wait_until(f"{len(returned)} RunTask tasks RUNNING",
                           lambda: returned.keys() <= fleet.running.keys(), PHASE_TIMEOUT_S)
    result.run_cpu_s = plane.cpu_seconds() - cpu0
    result.run_agents_cpu_share = (_own_cpu_seconds() - own0) / (time.monotonic() - wall0)
    result.run_tasks = len(returned)
    result.run_per_s = len(returned) / (max(fleet.running[a] for a in returned) - first_sent)
    for arn, back in returned.items():
        receipt = fleet.received[arn]
        result.run_latency_ms.append((receipt.wall - receipt.created_at) * 1e3)
        result.run_return_ms.append((receipt.mono - back) * 1e3)


async def scale_service(
    plane: ControlPlaneProcess, caller: Caller, fleet: Fleet, taskdef_arn: str, count: int, result: Result
) -> None:
    """A service scaled from 0 to ``count``: seconds until every task is RUNNING, and their latency."""
    group = f"service:{SERVICE_NAME}"
    await caller.call("CreateService", {"cluster": CLUSTER, "serviceName": SERVICE_NAME,
                                        "taskDefinition": taskdef_arn, "desiredCount": 0})
    cpu0 = plane.cpu_seconds()
    _, sent, _ = await caller.call("UpdateService", {
        "cluster": CLUSTER, "service": SERVICE_NAME, "desiredCount": count,
    })
    await fleet.wait_until(f"{count} service tasks RUNNING", lambda: fleet.running_in.get(group, 0) >= count,
                           PHASE_TIMEOUT_S)
    result.service_cpu_s = plane.cpu_seconds() - cpu0
    arns = [a for a, r in fleet.received.items() if r.group == group and a in fleet.running]
    result.service_tasks = len(arns)
    result.service_s = max(fleet.running[a] for a in arns) - sent
    result.service_latency_ms = [(fleet.received[a].wall - fleet.received[a].created_at) * 1e3 for a in arns]


async def measure(n: int, args: argparse.Namespace, work_dir: Path) -> Result:
    """Everything for one N against a fresh control plane; everything started is stopped on the way out."""
    result = Result(n)
    credentials = work_dir / "credentials"
    write_credentials(credentials)
    profile = args.profile / f"control-plane-{n}.pstats" if args.profile else None
    plane = ControlPlaneProcess(work_dir, credentials, profile)
    fleet = Fleet()
    rng = random.Random(args.seed)
    key = profile_credentials(str(credentials), AGENT_PROFILE)
    agents: list[SimulatedAgent] = []
    caller: Caller | None = None
    try:
        await asyncio.to_thread(plane.start)
        caller = Caller(plane.endpoint)
        agents = [SimulatedAgent(i, HttpLink([plane.endpoint], key, REGION), fleet, rng) for i in range(n)]
        await register_all(agents, result)
        print(f"  N={n:<5} registered {n} agents ({result.register_per_s:,.0f}/s)", flush=True)
        result.idle = await idle(plane, fleet, args.idle_seconds)
        print(f"  N={n:<5} idle {result.idle.seconds:.1f} s: {result.idle.heartbeats} heartbeats, "
              f"control plane {result.idle.cpu_s:.2f} CPU s", flush=True)
        taskdef = (await caller.call("RegisterTaskDefinition", _task_definition()))[0]["taskDefinition"]
        await run_tasks(plane, caller, fleet, taskdef["taskDefinitionArn"], args.runs, result)
        print(f"  N={n:<5} RunTask: {result.run_tasks} tasks RUNNING, {result.run_per_s:,.0f}/s", flush=True)
        if args.service_tasks:
            await scale_service(plane, caller, fleet, taskdef["taskDefinitionArn"], args.service_tasks,
                                result)
            print(f"  N={n:<5} service 0 -> {args.service_tasks}: {result.service_s:.2f} s", flush=True)
        result.live_tasks = len(fleet.running)
        if args.loaded_idle_seconds:
            result.loaded_idle = await idle(plane, fleet, args.loaded_idle_seconds)
            print(f"  N={n:<5} idle with {result.live_tasks} tasks: "
                  f"control plane {result.loaded_idle.cpu_s:.2f} CPU s", flush=True)
        result.errors = dict(fleet.errors)
        return result
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
        if caller is not None:
            await caller.close()
        await asyncio.to_thread(plane.stop)


# --------------------------------------------------------------------------- report


def _table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print()
    print(title)
    head = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    print(head)
    print("-" * len(head))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}"


def report(results: list[Result], args: argparse.Namespace) -> bool:
    """Print the tables; return whether the goal was met (True when the largest N is under it)."""
    rows = []
    for r in results:
        for tasks, window in ((0, r.idle), (r.live_tasks, r.loaded_idle)):
            if window is None:
                continue
            rows.append([
                str(r.agents), f"{r.register_per_s:,.0f}" if tasks == 0 else "", str(tasks),
                f"{window.heartbeats / window.seconds:.1f}", f"{r.agents / HEARTBEAT_S:.1f}",
                f"{window.polls / window.seconds:.1f}", f"{window.cpu_s / window.seconds * 100:.1f}",
                f"{window.cpu_us_per_heartbeat:,.0f}", f"{window.agents_cpu_share * 100:.1f}",
            ])
    _table(
        f"Idle: heartbeats (every {HEARTBEAT_S:g} s) and idle {POLL_WAIT_S:g} s long polls only, for "
        f"{args.idle_seconds:g} s before any task and {args.loaded_idle_seconds:g} s once every task runs. "
        "CP: the control plane.",
        ["agents", "registered/s", "live tasks", "heartbeats/s", "expected", "polls/s", "CP CPU % of a core",
         "CP CPU µs/heartbeat", "agents' CPU %"],
        rows,
    )
    print(f"peer: ECS's agent and ACS exchange a heartbeat at least every {ECS_HEARTBEAT_TIMEOUT_S:g} s "
          "(+ up to 60 s jitter) on one WebSocket per host;")
    print(f"      portside's agents send one every {HEARTBEAT_S:g} s: "
          f"{ECS_HEARTBEAT_TIMEOUT_S / HEARTBEAT_S:g}x as many messages.")
    _table(
        f"RunTask loop: {args.runs} calls of count {RUN_TASK_COUNT} (spread by instanceId), one after "
        "another. Assignment latency (ms):\nplacement commit -> the agent holds the task in a poll answer, "
        "counted from the task's createdAt and from RunTask's answer.",
        ["agents", "tasks", "RunTask ms p50", "p99", "latency p50", "p99", "max", "from answer p50", "p99",
         "placed/s", "CP CPU ms/task", "agents' CPU %"],
        [[str(r.agents), str(r.run_tasks), _ms(r.run_call_ms, 50), _ms(r.run_call_ms, 99),
          _ms(r.run_latency_ms, 50), _ms(r.run_latency_ms, 99), f"{max(r.run_latency_ms):.1f}",
          _ms(r.run_return_ms, 50), _ms(r.run_return_ms, 99), f"{r.run_per_s:,.0f}",
          f"{r.run_cpu_s / r.run_tasks * 1e3:.2f}", f"{r.run_agents_cpu_share * 100:.1f}"] for r in results],
    )
    served = [r for r in results if r.service_tasks]
    if served:
        _table(
            f"A service scaled 0 -> {args.service_tasks} by UpdateService: until every task's RUNNING "
            "report was accepted. Assignment latency (ms) from createdAt.",
            ["agents", "tasks", "seconds", "placed/s", "latency p50", "p99", "max", "CP CPU ms/task"],
            [[str(r.agents), str(r.service_tasks), f"{r.service_s:.2f}",
              f"{r.service_tasks / r.service_s:,.0f}", _ms(r.service_latency_ms, 50),
              _ms(r.service_latency_ms, 99), f"{max(r.service_latency_ms):.1f}",
              f"{r.service_cpu_s / r.service_tasks * 1e3:.2f}"] for r in served],
        )
    print(f"peer: Nomad's published cluster-wide scheduling rate is {NOMAD_PUBLISHED} placements/s "
          "(C2M, C1M: several many-core servers,")
    print("      real containers started; context, not like for like)")
    errors = {k: v for r in results for k, v in r.errors.items()}
    if errors:
        print(f"agent call errors: {errors}")
    print()
    largest = max(results, key=lambda r: r.agents)
    worst = max(percentile(largest.run_latency_ms, 99),
                percentile(largest.service_latency_ms, 99) if largest.service_latency_ms else 0.0)
    goal = f"goal: {GOAL_AGENTS:,} agents, p99 assignment latency < {GOAL_P99_MS:g} ms ->"
    if largest.agents < GOAL_AGENTS:
        print(f"{goal} not assessed (largest N {largest.agents:,}; its worst p99 {worst:.1f} ms)")
        return True
    met = worst < GOAL_P99_MS
    print(f"{goal} {largest.agents:,} agents, worst p99 {worst:.1f} ms: {'met' if met else 'NOT MET'}")
    return met


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", default="10,100,1000", help="comma-separated N (default 10,100,1000)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="the idle window (default 20)")
    parser.add_argument("--loaded-idle-seconds", type=float, default=10.0,
                        help="the idle window once every task runs (default 10; 0: skip)")
    parser.add_argument("--runs", type=int, default=30,
                        help=f"RunTask calls of count {RUN_TASK_COUNT} per N (default 30)")
    parser.add_argument("--service-tasks", type=int, default=500,
                        help="a service scaled 0 -> this (default 500; 0: skip)")
    parser.add_argument("--seed", type=int, default=1,
                        help="heartbeat phases and first poll waits (default 1)")
    parser.add_argument("--profile", type=Path,
                        help="write the control plane's cProfile statistics into this directory")
    args = parser.parse_args(argv)
    try:
        counts = [int(c) for c in args.agents.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--agents: comma-separated whole numbers, got {args.agents!r}")
    if not counts or min(counts) < RUN_TASK_COUNT:
        parser.error(f"--agents: every N must be at least {RUN_TASK_COUNT} "
                     f"(RunTask spreads {RUN_TASK_COUNT} tasks over distinct agents)")
    if args.idle_seconds < HEARTBEAT_S or 0 < args.loaded_idle_seconds < HEARTBEAT_S:
        parser.error(f"--idle-seconds must be at least {HEARTBEAT_S:g}, --loaded-idle-seconds 0 or at least "
                     f"{HEARTBEAT_S:g}")
    if args.runs < 1 or args.service_tasks < 0:
        parser.error("--runs must be at least 1, --service-tasks 0 or more")
    capacity = min(counts) * (INSTANCE_MEMORY_MIB // TASK_MEMORY_MIB)
    if args.runs * RUN_TASK_COUNT + args.service_tasks > capacity:
        parser.error(f"--runs x {RUN_TASK_COUNT} + --service-tasks must fit {capacity} tasks "
                     f"on {min(counts)} agents")
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
        except (BenchError, ControlPlaneError, LinkError, TimeoutError) as exc:
            failed = True
            print(f"\nN={n} failed: {exc or type(exc).__name__}", file=sys.stderr)
            log = work_dir / "control-plane.log"
            if log.exists():
                tail = log.read_text(errors="replace")[-3000:]
                print(f"--- control plane log (tail) ---\n{tail}", file=sys.stderr)
            break
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    if results:
        met = report(results, args)
        failed = failed or not met
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
