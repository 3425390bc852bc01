"""Time from RunTask to all N copies answering, beside plain ``docker run -p`` (issue 2).

Run: ``python benchmarks/run_task.py [--counts 1,10,50] [--repeats 3] [--images nginx,busybox]``
(as a user who may talk to the Docker Engine; the images are built locally ``FROM scratch``).

Goal: portside within 1.3x of plain Docker for the same N, measured in the same run.

What one measurement is
-----------------------
Both systems start N copies of the same image, each publishing container port 80 on
127.0.0.1 with a dynamic host port, and the clock runs from the first request until every
copy has answered ``GET /`` with 200 on its host port:

portside
    One ``portside server`` (own temporary state dir, ``--task-cleanup-wait 0``) with the task
    definition registered once. t0, then ceil(N/10) RunTask calls (``count`` <= 10, ECS's
    limit) issued at once from threads, then DescribeTasks every ``DESCRIBE_INTERVAL_S`` for
    the tasks whose ``networkBindings`` are not known yet; each host port, as soon as it is
    known, is polled with HTTP GET until it answers 200; t1 is the last 200.

docker
    t0, then N ``docker run -d -p 127.0.0.1::80 ... IMAGE`` processes (the real CLI, as a user
    runs it) started at once, each followed by ``docker port ID 80/tcp``; each host port, as
    soon as it is known, is polled exactly as above; t1 is the last 200.

Concurrency (the fairness choice)
    portside admits every task of a RunTask in one transaction and then starts each task as
    its own coroutine (inspect image, create, start, inspect), all tasks of all concurrent
    RunTask calls in flight at once, their engine calls on a 32-thread pool. The docker side
    mirrors that with one ``docker run`` per copy, all N in flight at once (each is one
    create + start, i.e. one task's worth of engine calls), not N/10 workers starting 10 in
    sequence, which would serialize what portside does in parallel. The CLI processes are not
    capped at 32; for N <= 32 the two are the same shape.

Same containers
    The task definition asks for ``memoryReservation`` 32 MiB and no ``cpu``, so portside
    creates each container with a 32 MiB memory reservation and 2 CPU shares (the ECS agent's
    minimum); ``docker run`` gets the same ``--memory-reservation 32m --cpu-shares 2``, so
    both sides start identical containers. Docker-side containers carry the label
    ``portside.bench=1``.

Not timed
    Between measurements every copy is stopped and removed and the script waits until the
    engine has none left (portside: StopTask, wait for STOPPED and for the containers to be
    gone; docker: ``docker rm -f``), then pauses ``SETTLE_S``. Each (image, N) starts with one
    untimed warm-up per system. Systems alternate (portside, docker, portside, docker, ...)
    for ``--repeats`` rounds; the table reports medians and portside median / docker median.

The HTTP poller is one asyncio loop on its own thread: per port a GET with a
``PROBE_TIMEOUT_S`` timeout, retried every 5-25 ms (longer with more ports in flight, to keep
the poller's CPU use small on small machines). Both systems are timed with the same poller.

Everything the script started (server, tasks, containers, temp dir) is removed on exit,
including after Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import docker
from botocore.config import Config

from portside.agent.driver import LABEL_OWNER
from portside.agent.engine import userland_proxy_enabled
from portside.agent.host import owner_id
from portside.images import build_busybox_web_image, build_nginx_image

GOAL_RATIO = 1.3
RUN_TASK_MAX_COUNT = 10  # ECS's limit on RunTask's count
CONTAINER_PORT = 80
PUBLISH_IP = "127.0.0.1"
MEMORY_RESERVATION_MIB = 32
CPU_SHARES = 2  # what portside (like the ECS agent) passes for a container without cpu
BENCH_LABEL = "portside.bench=1"

DESCRIBE_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 0.25
PROBE_INTERVAL_MIN_S = 0.005
PROBE_INTERVAL_MAX_S = 0.025
PROBE_INTERVAL_PER_PORT_S = 0.0005
MEASURE_TIMEOUT_S = 120.0  # one measurement fails after this
CLEANUP_TIMEOUT_S = 120.0
CLI_TIMEOUT_S = 120.0
SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 20.0
SETTLE_S = 0.5
WAIT_STEP_S = 0.1

IMAGES: dict[str, tuple[str, Callable[[Any], str]]] = {
    "nginx": ("nginx-keepalive", build_nginx_image),
    "busybox": ("busybox-web", build_busybox_web_image),
}


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- HTTP poller


class Round:
    """The ports of one measurement and when each first answered 200."""

    def __init__(self, poller: AnswerPoller, expected: int, deadline: float) -> None:
        self.poller = poller
        self.expected = expected
        self.deadline = deadline
        self.interval = min(PROBE_INTERVAL_MAX_S, max(PROBE_INTERVAL_MIN_S, expected * PROBE_INTERVAL_PER_PORT_S))
        self.answered: dict[int, float] = {}
        self.ports: set[int] = set()
        self.done = threading.Event()
        self.cancelled = False

    def add(self, port: int) -> None:
        """Start polling ``port`` (thread-safe)."""
        self.poller.loop.call_soon_threadsafe(self._add, port)

    def _add(self, port: int) -> None:
        if port in self.ports:
            return
        self.ports.add(port)
        self.poller.loop.create_task(self._poll(port))

    async def _poll(self, port: int) -> None:
        while not self.cancelled and time.perf_counter() < self.deadline:
            if await _answers_200(port):
                self.answered[port] = time.perf_counter()
                if len(self.answered) >= self.expected:
                    self.done.set()
                return
            await asyncio.sleep(self.interval)

    @property
    def finished_at(self) -> float:
        return max(self.answered.values())

    def cancel(self) -> None:
        self.cancelled = True


async def _answers_200(port: int) -> bool:
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(PUBLISH_IP, port), PROBE_TIMEOUT_S)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status_line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT_S)
        return status_line.split()[1:2] == [b"200"]
    except (OSError, TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()


class AnswerPoller:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="http-poller", daemon=True)
        self.thread.start()

    def new_round(self, expected: int) -> Round:
        return Round(self, expected, time.perf_counter() + MEASURE_TIMEOUT_S)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --------------------------------------------------------------------------- results


@dataclass
class Sample:
    total_s: float
    phases: dict[str, float]  # phase name -> seconds since t0


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(s.total_s for s in self.samples)

    def phase_median(self, name: str) -> float:
        return statistics.median(s.phases[name] for s in self.samples)


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _split(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(WAIT_STEP_S)


def _prewarm(pool: concurrent.futures.ThreadPoolExecutor, workers: int) -> None:
    """Create every worker thread now, so no measurement pays for thread creation."""
    barrier = threading.Barrier(workers + 1)
    futures = [pool.submit(barrier.wait, 10) for _ in range(workers)]
    barrier.wait(10)
    concurrent.futures.wait(futures, 10)


class CliProcesses:
    """Docker CLI child processes in flight, so an interrupted run can wait for or kill them."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self.closing = False

    def run(self, argv: list[str], timeout: float = CLI_TIMEOUT_S) -> str:
        with self._lock:
            if self.closing:
                raise BenchError("shutting down")
            # Own session: a Ctrl-C in the terminal interrupts this script, not a half-made container.
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
            self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BenchError(f"{' '.join(argv[:3])} ... did not finish within {timeout:g} s") from None
        finally:
            with self._lock:
                self._procs.discard(proc)
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()}")
        return out

    def drain(self, timeout: float) -> None:
        with self._lock:
            self.closing = True
            procs = list(self._procs)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --------------------------------------------------------------------------- portside side


class PortsideServer:
    """``portside server`` in a child process on a free loopback port with a temporary state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = _free_port()
        self.log_path = state_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "portside.cli.main", "server",
            "--api", f"127.0.0.1:{self.port}", "--state-dir", str(self.state_dir),
            "--task-cleanup-wait", "0", "--stop-timeout", "5",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"portside server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(WAIT_STEP_S)
        raise BenchError(f"portside server did not answer within {SERVER_START_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def client(self) -> Any:
        return boto3.client(
            "ecs",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1}, read_timeout=60, max_pool_connections=20),
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _task_definition(family: str, image: str) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "bridge",
        "containerDefinitions": [
            {
                "name": "web",
                "image": image,
                "essential": True,
                "memoryReservation": MEMORY_RESERVATION_MIB,
                "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": 0, "protocol": "tcp"}],
            }
        ],
    }


def _host_port(task: dict[str, Any]) -> int | None:
    for container in task.get("containers") or []:
        for binding in container.get("networkBindings") or []:
            if binding.get("containerPort") == CONTAINER_PORT and binding.get("hostPort"):
                return int(binding["hostPort"])
    return None


class PortsideBench:
    def __init__(self, server: PortsideServer, engine: Any, pool: concurrent.futures.ThreadPoolExecutor, max_n: int) -> None:
        self.server = server
        self.engine = engine
        self.pool = pool
        self.owner = owner_id(server.state_dir)
        # One client per concurrent RunTask caller, made before any clock starts.
        self.clients = [server.client() for _ in range(max(1, -(-max_n // RUN_TASK_MAX_COUNT)))]
        self.describer = server.client()
        self.live: list[str] = []  # task ARNs started and not yet confirmed gone

    def register(self, family: str, image: str) -> str:
        td = self.describer.register_task_definition(**_task_definition(family, image))["taskDefinition"]
        return str(td["taskDefinitionArn"])

    def _run(self, client: Any, taskdef: str, count: int) -> dict[str, Any]:
        return client.run_task(taskDefinition=taskdef, count=count, startedBy="portside-bench")

    def measure(self, poller: AnswerPoller, taskdef: str, n: int) -> Sample:
        rnd = poller.new_round(n)
        t0 = time.perf_counter()
        pending = [self.pool.submit(self._run, self.clients[i], taskdef, c) for i, c in enumerate(_split(n, RUN_TASK_MAX_COUNT))]
        arns: list[str] = []
        bound: dict[str, int] = {}
        t_returned = t_bound = None
        try:
            while not rnd.done.is_set():
                for future in [f for f in pending if f.done()]:
                    pending.remove(future)
                    answer = future.result()
                    arns.extend(t["taskArn"] for t in answer["tasks"])
                    self.live.extend(t["taskArn"] for t in answer["tasks"])
                    if answer.get("failures"):
                        raise BenchError(f"RunTask failures: {answer['failures']}")
                if not pending and t_returned is None:
                    t_returned = time.perf_counter() - t0
                unbound = [a for a in arns if a not in bound]
                for chunk in _chunks(unbound, 100):
                    for task in self.describer.describe_tasks(tasks=chunk)["tasks"]:
                        port = _host_port(task)
                        if port is not None:
                            bound[task["taskArn"]] = port
                            rnd.add(port)
                        elif task["lastStatus"] in ("STOPPING", "DEPROVISIONING", "STOPPED"):
                            raise BenchError(f"task {task['taskArn']} stopped: {task.get('stoppedReason')}")
                if t_bound is None and len(bound) == n:
                    t_bound = time.perf_counter() - t0
                if time.perf_counter() > rnd.deadline:
                    raise BenchError(f"portside: {len(rnd.answered)}/{n} copies answered within {MEASURE_TIMEOUT_S:g} s")
                rnd.done.wait(DESCRIBE_INTERVAL_S)
        finally:
            rnd.cancel()
            for future in pending:  # an error above: still learn the ARNs, for cleanup
                try:
                    self.live.extend(t["taskArn"] for t in future.result(CLI_TIMEOUT_S)["tasks"])
                except Exception as exc:  # noqa: BLE001 - already failing; the label sweep at exit covers it
                    print(f"  (a RunTask call failed too: {exc})", file=sys.stderr)
        total = rnd.finished_at - t0
        phases = {
            "RunTask returned": t_returned if t_returned is not None else total,
            "bindings known": t_bound if t_bound is not None else total,
            "all answering": total,
        }
        return Sample(total, phases)

    def cleanup(self) -> None:
        """Stop every task started and wait until they are STOPPED and their containers removed."""
        arns = list(dict.fromkeys(self.live))
        if arns:
            stops = [self.pool.submit(self.clients[i % len(self.clients)].stop_task, task=a, reason="benchmark")
                     for i, a in enumerate(arns)]
            for future in stops:
                future.result(CLI_TIMEOUT_S)

            def all_stopped() -> bool:
                for chunk in _chunks(arns, 100):
                    if any(t["lastStatus"] != "STOPPED" for t in self.describer.describe_tasks(tasks=chunk)["tasks"]):
                        return False
                return True

            _wait_until("the tasks to stop", all_stopped, CLEANUP_TIMEOUT_S)
        _wait_until("portside's containers to be removed", lambda: not self._containers(), CLEANUP_TIMEOUT_S)
        self.live.clear()

    def _containers(self) -> list[Any]:
        return list(self.engine.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"}))



def _remove_labelled(engine: Any, label: str) -> None:
    """Force-remove every container carrying ``label`` (KEY=VALUE)."""
    for container in engine.containers.list(all=True, filters={"label": label}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass


# --------------------------------------------------------------------------- docker side


class DockerBench:
    def __init__(self, engine: Any, pool: concurrent.futures.ThreadPoolExecutor, cli: CliProcesses) -> None:
        self.engine = engine
        self.pool = pool
        self.cli = cli
        self.ids: set[str] = set()
        self._lock = threading.Lock()

    def _one(self, image: str, rnd: Round, t0: float) -> tuple[float, float]:
        out = self.cli.run([
            "docker", "run", "-d", "-p", f"{PUBLISH_IP}::{CONTAINER_PORT}",
            "--label", BENCH_LABEL,
            "--memory-reservation", f"{MEMORY_RESERVATION_MIB}m", "--cpu-shares", str(CPU_SHARES),
            image,
        ])
        container_id = out.strip().splitlines()[-1]
        with self._lock:
            self.ids.add(container_id)
        t_run = time.perf_counter() - t0
        mapping = self.cli.run(["docker", "port", container_id, f"{CONTAINER_PORT}/tcp"])
        port = int(mapping.splitlines()[0].rsplit(":", 1)[1])
        rnd.add(port)
        return t_run, time.perf_counter() - t0

    def measure(self, poller: AnswerPoller, image: str, n: int) -> Sample:
        rnd = poller.new_round(n)
        t0 = time.perf_counter()
        futures = [self.pool.submit(self._one, image, rnd, t0) for _ in range(n)]
        try:
            results = [f.result(MEASURE_TIMEOUT_S) for f in futures]
            if not rnd.done.wait(max(0.0, rnd.deadline - time.perf_counter())):
                raise BenchError(f"docker: {len(rnd.answered)}/{n} copies answered within {MEASURE_TIMEOUT_S:g} s")
        finally:
            rnd.cancel()
            concurrent.futures.wait(futures, CLI_TIMEOUT_S)
        total = rnd.finished_at - t0
        phases = {
            "RunTask returned": max(r[0] for r in results),  # all `docker run -d` returned
            "bindings known": max(r[1] for r in results),  # all `docker port` answered
            "all answering": total,
        }
        return Sample(total, phases)

    def cleanup(self) -> None:
        with self._lock:
            ids = sorted(self.ids)
        for chunk in _chunks(ids, 50):
            self.cli.run(["docker", "rm", "-f", "-v", *chunk])
        with self._lock:
            self.ids.difference_update(ids)
        _wait_until("the docker-run containers to be removed", lambda: not self._containers(), CLEANUP_TIMEOUT_S)

    def _containers(self) -> list[Any]:
        return list(self.engine.containers.list(all=True, filters={"label": BENCH_LABEL}))



# --------------------------------------------------------------------------- main


def _header(engine: Any) -> None:
    version = engine.version()
    try:
        cli_version = subprocess.run(
            ["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        cli_version = "?"
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    proxy = userland_proxy_enabled()
    print(f"CPUs: {os.cpu_count()} (usable by this process: {usable})")
    print(f"Docker Engine {version.get('Version')} (API {version.get('ApiVersion')}), CLI {cli_version}, "
          f"userland-proxy: {'unknown' if proxy is None else ('on' if proxy else 'off')}, "
          f"cgroup v{engine.info().get('CgroupVersion', '?')}")
    print(f"Python {sys.version.split()[0]}; goal: portside median <= {GOAL_RATIO}x docker median")
    print()


def _fmt_runs(series: Series) -> str:
    return " ".join(f"{s.total_s:.3f}" for s in series.samples)


def _report(results: list[tuple[str, int, Series, Series]]) -> None:
    print()
    print("Time from the first request to all N copies answering HTTP 200 (median of the repeats):")
    print()
    head = f"{'image':<16} {'N':>3}  {'portside s':>10}  {'docker s':>9}  {'ratio':>6}  goal met (<= {GOAL_RATIO}x)"
    print(head)
    print("-" * len(head))
    for label, n, ps, dk in results:
        ratio = ps.median() / dk.median()
        print(f"{label:<16} {n:>3}  {ps.median():>10.3f}  {dk.median():>9.3f}  {ratio:>5.2f}x  "
              f"{'yes' if ratio <= GOAL_RATIO else 'NO'}")
    print()
    print("Phases (median seconds since t0). portside: all RunTask calls returned / all networkBindings")
    print("seen in DescribeTasks / all answering. docker: all `docker run -d` returned / all `docker port`")
    print("answered / all answering.")
    print()
    for label, n, ps, dk in results:
        for name, series in (("portside", ps), ("docker", dk)):
            p = [series.phase_median(k) for k in ("RunTask returned", "bindings known", "all answering")]
            print(f"{label:<16} {n:>3}  {name:<8}  {p[0]:7.3f}  {p[1]:7.3f}  {p[2]:7.3f}   runs: {_fmt_runs(series)}")


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--counts", default="1,10,50", help="comma-separated N (default 1,10,50)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per system and N (default 3)")
    parser.add_argument("--images", default="nginx,busybox", help=f"comma-separated, of {','.join(IMAGES)}")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    images = [i.strip() for i in args.images.split(",") if i.strip()]
    if not counts or min(counts) < 1 or args.repeats < 1 or any(i not in IMAGES for i in images):
        parser.error("counts must be >= 1, repeats >= 1, images from: " + ", ".join(IMAGES))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _on_sigterm)

    engine = docker.from_env(timeout=CLI_TIMEOUT_S)
    _header(engine)
    tags = {name: IMAGES[name][1](engine) for name in images}

    max_n = max(counts)
    state_dir = Path(tempfile.mkdtemp(prefix="portside-bench-"))
    pool = concurrent.futures.ThreadPoolExecutor(max_n + 4, thread_name_prefix="bench")
    cli = CliProcesses()
    poller = AnswerPoller()
    server = PortsideServer(state_dir)
    dk_bench = DockerBench(engine, pool, cli)
    results: list[tuple[str, int, Series, Series]] = []
    failed = False
    try:
        _prewarm(pool, max_n + 4)
        server.start()
        ps_bench = PortsideBench(server, engine, pool, max_n)
        for name in images:
            label = IMAGES[name][0]
            taskdef = ps_bench.register(f"bench-{label}", tags[name])
            for n in counts:
                ps_series, dk_series = Series(), Series()
                for warm in (True, *([False] * args.repeats)):
                    for system, series in (("portside", ps_series), ("docker", dk_series)):
                        if system == "portside":
                            sample = ps_bench.measure(poller, taskdef, n)
                            ps_bench.cleanup()
                        else:
                            sample = dk_bench.measure(poller, tags[name], n)
                            dk_bench.cleanup()
                        kind = "warm-up" if warm else f"run {len(series.samples) + 1}/{args.repeats}"
                        print(f"  {label:<16} N={n:<3} {system:<8} {kind:<8} {sample.total_s:7.3f} s", flush=True)
                        if not warm:
                            series.samples.append(sample)
                        time.sleep(SETTLE_S)
                results.append((label, n, ps_series, dk_series))
        _report(results)
    except KeyboardInterrupt:
        failed = True
        print("\ninterrupted; cleaning up", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - report, print what was measured, then clean up
        failed = True
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        if server.proc is not None:
            print(f"--- portside server log (tail) ---\n{server.log_tail()}", file=sys.stderr)
        if results:
            _report(results)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cli.drain(CLI_TIMEOUT_S)
        server.stop()
        _remove_labelled(engine, f"{LABEL_OWNER}={owner_id(state_dir)}")  # the server is gone: what it left
        _remove_labelled(engine, BENCH_LABEL)
        pool.shutdown(wait=True, cancel_futures=True)
        poller.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
