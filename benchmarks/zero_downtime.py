"""Zero failed requests under steady load while a service scales out, scales in and deploys.

Run: ``python benchmarks/zero_downtime.py [--rounds 3] [--rate 330]`` (as root or a user who may
talk to the Docker Engine; the busybox image is built locally ``FROM scratch``; about 2-3 minutes).

Goal: zero failed requests in each of scale-out 3 -> 10, scale-in 10 -> 3 and a rolling
deployment (3 copies, revision N -> N+1, ECS's default 100 % / 200 %), under a load of at least
300 requests/s over at least 16 keep-alive client connections that mixes fast requests with slow
ones (1-2 s) so that every drained copy has requests in flight. Any non-2xx answer or socket error
(refused, reset, early EOF, a 15 s timeout) is a failure.

The setup
---------
One ``portside server`` (own temp state dir) and a service of ``portside/busybox-web`` copies
(``hostPort: 0``, stopTimeout 10 s) in a target group (health check ``GET /`` every 5 s,
deregistration delay 5 s) behind an internal HTTP listener. busybox httpd closes every connection
after its response, so every proxied request is a new connection to a copy; the client side stays
keep-alive (the proxy keeps client connections open).

The load (one asyncio loop on its own thread, raw HTTP/1.1, no retries)
    fast   ``--fast-conns`` keep-alive connections (24), each sending ``GET /index.html`` on a
           fixed schedule so that together they offer ``--rate`` requests/s (330);
    slow   ``--slow-conns`` keep-alive connections (40), each sending ``GET /cgi-bin/sleep?S``
           back to back with S uniform in 1.0-2.0 s (about 27 requests/s, ~40 always in flight,
           i.e. 4 per copy at 10 copies, 13 at 3), answered ``slept S <hostname>``.
    A connection the server closed (``Connection: close``, or a body delimited by EOF) is reopened
    before the next request; that is not a failure. Each request has a 15 s deadline.

One phase: load starts; ``WARM_S`` later the action (UpdateService); the phase ends when the
service is stable again (the desired copies RUNNING and healthy, nothing draining, every stopped
task STOPPED) plus ``TAIL_S``; then no new requests are sent, and in-flight ones finish (bounded).
During the phase DescribeTargetHealth is polled every 0.2 s to note when each target turned
``draining``; a slow request answered by a drained copy that started before and ended after that
moment was in flight at the drain (a lower bound: the poll sees the drain up to 0.2 s late).

The peer, measured in the same run: the same load for as long as the longest phase, straight at
one copy's host port (127.0.0.1:hostPort, no proxy), to show that the load generator itself
produces no failures. Each round runs scale-out, scale-in, deployment, peer; ``--rounds`` rounds.

Everything started (server, service, load balancer, containers, temp dir) is removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import docker
from _service_bench import (
    BenchError,
    PortsideServer,
    Service,
    container_of_task,
    host_port,
    load_average,
    median,
    percentile,
    table,
    wait_for_quiet,
    web_task_definition,
)

from portside.agent.engine import userland_proxy_enabled
from portside.images import build_busybox_web_image

BASE, PEAK = 3, 10
HC_INTERVAL_S = 5
DEREG_DELAY_S = 5
STOP_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 15.0
WARM_S = 3.0
TAIL_S = 3.0
PHASE_TIMEOUT_S = 90.0
DRAIN_WAIT_S = 20.0
HEALTH_POLL_S = 0.2


# --------------------------------------------------------------------------- load generator


def syn_retransmits() -> int:
    """This network namespace's TcpExt TCPSynRetrans counter (every process's connects, not only ours)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:])).get("TCPSynRetrans", 0))
    return 0


@dataclass
class Result:
    kind: str  # "fast" | "slow"
    start: float
    end: float
    outcome: str  # "ok" or the failure kind
    host: str = ""


class HttpError(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response; raises on EOF / malformed."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError("malformed status line")
    status = int(parts[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    keep = parts[0] == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(chunks)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()  # delimited by EOF
        keep = False
    return status, body, keep


class Load:
    """Fast + slow keep-alive connections against one address until ``stop()``; results in ``results``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, rate: float, fast_conns: int, slow_conns: int) -> None:
        self.loop = loop
        self.port = port
        self.rate = rate
        self.fast_conns = fast_conns
        self.slow_conns = slow_conns
        self.results: list[Result] = []
        self.stopping = False
        self.workers: list[asyncio.Future[None]] = []
        self.opened = 0

    def start(self) -> None:
        def go() -> None:
            interval = self.fast_conns / self.rate
            for i in range(self.fast_conns):
                self.workers.append(asyncio.ensure_future(self._worker("fast", interval, i * interval / self.fast_conns)))
            for i in range(self.slow_conns):
                self.workers.append(asyncio.ensure_future(self._worker("slow", 0.0, random.uniform(0, 0.5))))
        self.loop.call_soon_threadsafe(go)

    def stop(self, timeout: float) -> int:
        """Stop sending new requests; wait (bounded) for those in flight; return how many were cut off."""
        self.stopping = True

        async def wait() -> int:
            _done, pending = await asyncio.wait(self.workers, timeout=timeout)
            for w in pending:
                w.cancel()
            return len(pending)

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout + 5)

    async def _worker(self, kind: str, interval: float, offset: float) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        next_at = self.loop.time() + offset
        try:
            while not self.stopping:
                if interval:
                    delay = next_at - self.loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at = max(next_at + interval, self.loop.time() - interval)  # no catch-up bursts
                    if self.stopping:
                        break
                if kind == "fast":
                    path = b"/index.html"
                else:
                    path = b"/cgi-bin/sleep?%.1f" % random.uniform(1.0, 2.0)
                start = time.time()
                outcome, host = "ok", ""
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        if writer is None:
                            try:
                                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                            except OSError as exc:
                                raise HttpError(f"connect: {type(exc).__name__}") from exc
                            self.opened += 1
                        assert reader is not None
                        writer.write(b"GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: zero-downtime\r\n\r\n" % path)
                        await writer.drain()
                        status, body, keep = await _read_response(reader)
                    if not 200 <= status < 300:
                        outcome = f"status {status}"
                    elif kind == "slow":
                        host = body.split()[-1].decode(errors="replace") if body.strip() else ""
                    if not keep:
                        writer.close()
                        writer = reader = None
                except (HttpError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                        TimeoutError) as exc:
                    if isinstance(exc, HttpError):
                        outcome = str(exc)
                    elif isinstance(exc, TimeoutError):
                        outcome = "timeout"
                    elif isinstance(exc, asyncio.IncompleteReadError):
                        outcome = "eof before a full response" if exc.partial else "eof before any byte"
                    else:
                        outcome = type(exc).__name__
                    if writer is not None:
                        writer.close()
                    writer = reader = None
                self.results.append(Result(kind, start, time.time(), outcome, host))
        finally:
            if writer is not None:
                writer.close()


class LoadLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="load", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --------------------------------------------------------------------------- phases


@dataclass
class Phase:
    name: str
    results: list[Result]
    duration: float
    converge: float  # action -> stable
    drained: dict[str, float] = field(default_factory=dict)  # hostname -> time first seen draining
    cut_off: int = 0
    conns_opened: int = 0
    syn_retrans: int = 0
    stopped: list[str] = field(default_factory=list)  # hostnames of the copies the phase stopped

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.results if r.outcome == "ok"]
        fails = Counter(r.outcome for r in self.results if r.outcome != "ok")
        span = self.duration
        fast = [r.end - r.start for r in ok if r.kind == "fast"]
        slow = [r.end - r.start for r in ok if r.kind == "slow"]
        in_flight = {}
        for host, t in self.drained.items():
            if host not in self.stopped:
                continue
            in_flight[host] = sum(1 for r in ok if r.kind == "slow" and r.host == host and r.start < t < r.end)
        return {
            "requests": len(self.results), "rate": len(self.results) / span if span else 0.0,
            "fast": len([r for r in self.results if r.kind == "fast"]),
            "slow": len([r for r in self.results if r.kind == "slow"]),
            "failures": sum(fails.values()), "kinds": dict(fails),
            "fast_p50": median(fast), "fast_p99": percentile(fast, 99),
            "slow_p50": median(slow), "slow_p99": percentile(slow, 99),
            "in_flight": in_flight,
        }


class Bench:
    def __init__(self, service: Service, engine: Any, loads: LoadLoop, args: argparse.Namespace) -> None:
        self.service = service
        self.engine = engine
        self.loads = loads
        self.args = args
        self.port_host: dict[int, str] = {}  # host port -> container hostname, of every task seen

    def _learn_hosts(self) -> set[str]:
        """Note the hostname of every task's host port; return the hostnames of the tasks listed now."""
        listed = set()
        for task in self.service.tasks():
            port = host_port(task)
            if port is not None and port not in self.port_host:
                c = container_of_task(self.engine, task["taskArn"])
                if c is not None:
                    self.port_host[port] = str(c.attrs["Config"]["Hostname"])
            if port in self.port_host:
                listed.add(self.port_host[port])
        return listed

    def _stable(self, n: int, taskdef: str | None) -> bool:
        if not self.service.is_stable(n, taskdef):
            return False
        # every task asked to stop has stopped (ListTasks defaults to desiredStatus RUNNING)
        return self.service.stopped_tasks_done()

    def run_phase(self, name: str, action: Any, n: int, taskdef: str | None = None) -> Phase:
        before = self._learn_hosts()
        load = Load(self.loads.loop, self.service.listener_port, self.args.rate, self.args.fast_conns, self.args.slow_conns)
        syn0 = syn_retransmits()
        t_begin = time.time()
        load.start()
        drained: dict[str, float] = {}
        try:
            time.sleep(WARM_S)
            t_action = time.time()
            action()
            deadline = time.monotonic() + PHASE_TIMEOUT_S
            while True:
                self._learn_hosts()
                now = time.time()
                for port, state in self.service.health().items():
                    if state == "draining" and port in self.port_host:
                        drained.setdefault(self.port_host[port], now)
                if self._stable(n, taskdef):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"{name}: not stable within {PHASE_TIMEOUT_S:g} s")
                time.sleep(HEALTH_POLL_S)
            converge = time.time() - t_action
            stopped = sorted(before - self._learn_hosts())
            time.sleep(TAIL_S)
        finally:
            t_stop = time.time()
            cut = load.stop(DRAIN_WAIT_S)
        return Phase(name, load.results, t_stop - t_begin, converge, drained, cut, load.opened,
                     syn_retransmits() - syn0, stopped)

    def run_peer(self, duration: float) -> Phase:
        tasks = self.service.tasks()
        port = host_port(tasks[0]) if tasks else None
        if port is None:
            raise BenchError("no copy to measure the peer against")
        load = Load(self.loads.loop, port, self.args.rate, self.args.fast_conns, self.args.slow_conns)
        syn0 = syn_retransmits()
        t_begin = time.time()
        load.start()
        try:
            time.sleep(duration)
        finally:
            t_stop = time.time()
            cut = load.stop(DRAIN_WAIT_S)
        return Phase(f"peer: one copy direct (127.0.0.1:{port})", load.results, t_stop - t_begin, 0.0, {}, cut,
                     load.opened, syn_retransmits() - syn0)


# --------------------------------------------------------------------------- main


def fmt_ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=330.0, help="fast requests/s offered (slow ones come on top)")
    ap.add_argument("--fast-conns", type=int, default=24)
    ap.add_argument("--slow-conns", type=int, default=40)
    ap.add_argument("--quiet-load", type=float, default=2.0)
    ap.add_argument("--quiet-wait", type=float, default=600.0)
    args = ap.parse_args()
    started = time.monotonic()

    engine = docker.from_env()
    image = build_busybox_web_image(engine)
    print(f"zero_downtime: image {image}; docker userland proxy enabled: {userland_proxy_enabled()}")
    load_start = wait_for_quiet(args.quiet_load, args.quiet_wait)
    print(f"  load average at start: {load_start:.2f}", flush=True)

    server = PortsideServer(stop_timeout=STOP_TIMEOUT_S)
    service: Service | None = None
    loads = LoadLoop()
    phases: list[tuple[int, Phase]] = []
    error: str | None = None
    try:
        server.start()
        service = Service(server, "zero-downtime")
        service.create(image, BASE, hc_path="/", hc_interval=HC_INTERVAL_S, healthy_threshold=2,
                       dereg_delay=DEREG_DELAY_S, stop_timeout=STOP_TIMEOUT_S, env={"REVISION": "1"})
        service.wait_stable(BASE)
        bench = Bench(service, engine, loads, args)
        revision = 1
        for rnd in range(1, args.rounds + 1):
            p = bench.run_phase(f"scale-out {BASE} -> {PEAK}",
                                lambda: service.ecs.update_service(service=service.name, desiredCount=PEAK), PEAK)
            phases.append((rnd, p))
            print(f"  round {rnd}: {p.name}: {len(p.results)} requests, "
                  f"{sum(r.outcome != 'ok' for r in p.results)} failed, converged in {p.converge:.1f} s", flush=True)
            p = bench.run_phase(f"scale-in {PEAK} -> {BASE}",
                                lambda: service.ecs.update_service(service=service.name, desiredCount=BASE), BASE)
            phases.append((rnd, p))
            print(f"  round {rnd}: {p.name}: {len(p.results)} requests, "
                  f"{sum(r.outcome != 'ok' for r in p.results)} failed, converged in {p.converge:.1f} s", flush=True)
            revision += 1
            new_td = service.ecs.register_task_definition(
                **web_task_definition(service.name, image, STOP_TIMEOUT_S, {"REVISION": str(revision)})
            )["taskDefinition"]["taskDefinitionArn"]
            p = bench.run_phase(f"rolling deployment ({BASE} copies, rev {revision - 1} -> {revision})",
                                lambda td=new_td: service.ecs.update_service(service=service.name, taskDefinition=td),
                                BASE, taskdef=new_td)
            phases.append((rnd, p))
            print(f"  round {rnd}: {p.name}: {len(p.results)} requests, "
                  f"{sum(r.outcome != 'ok' for r in p.results)} failed, converged in {p.converge:.1f} s", flush=True)
            longest = max(ph.duration for r, ph in phases if r == rnd)
            p = bench.run_peer(longest)
            phases.append((rnd, p))
            print(f"  round {rnd}: {p.name}: {len(p.results)} requests, "
                  f"{sum(r.outcome != 'ok' for r in p.results)} failed", flush=True)
    except BenchError as exc:
        error = str(exc)
        print(f"  ERROR: {error}", file=sys.stderr)
    finally:
        loads.close()
        if service is not None:
            service.delete()
        server.stop()
        left = server.remove_leftovers(engine)
        if left:
            print(f"  teardown: removed {left} leftover portside containers", file=sys.stderr)
        if error:
            print(server.log_tail(3000), file=sys.stderr)
        server.cleanup_dir()
    load_end = load_average()

    print()
    print(f"Failed requests during scale-out, scale-in and a rolling deployment, under load "
          f"({args.fast_conns} fast + {args.slow_conns} slow keep-alive connections; fast GET /index.html offered at "
          f"{args.rate:g}/s, slow GET /cgi-bin/sleep?1.0-2.0 back to back; deregistration delay {DEREG_DELAY_S} s, "
          f"stopTimeout {STOP_TIMEOUT_S} s, health check every {HC_INTERVAL_S} s; load average {load_start:.2f} at "
          f"start, {load_end:.2f} at end)")
    rows = []
    all_ok = True
    for rnd, p in phases:
        s = p.summary()
        is_peer = p.name.startswith("peer")
        if s["failures"] or p.cut_off:
            all_ok = False
        drained = s["in_flight"]
        with_flight = sum(1 for v in drained.values() if v > 0)
        rows.append([
            f"{rnd}  {p.name}", f"{p.duration:.1f}", "-" if is_peer else f"{p.converge:.1f}", s["requests"],
            f"{s['rate']:.0f}", s["slow"], s["failures"] + p.cut_off,
            ", ".join(f"{k}: {v}" for k, v in s["kinds"].items()) + (f"cut off: {p.cut_off}" if p.cut_off else "") or "-",
            fmt_ms(s["fast_p50"]), fmt_ms(s["fast_p99"]), fmt_ms(s["slow_p50"]), fmt_ms(s["slow_p99"]),
            "-" if is_peer or not p.stopped else
            f"{with_flight}/{len(p.stopped)} (seen draining {len(drained)}, median {median(list(drained.values())):.0f})",
            p.syn_retrans,
        ])
    print(table(
        ["round / phase", "secs", "converge s", "requests", "req/s", "slow", "failed", "failures by kind",
         "fast p50 ms", "fast p99 ms", "slow p50 ms", "slow p99 ms", "stopped copies w/ slow in flight at drain",
         "SYN retrans"],
        rows,
    ))
    min_rate = min((p.summary()["rate"] for _, p in phases if not p.name.startswith("peer")), default=0.0)
    print(f"goal: zero failed requests in every phase -> {'MET' if all_ok and not error and phases else 'MISSED'}"
          f"{' (' + error + ')' if error else ''}; lowest portside phase rate {min_rate:.0f} req/s (needs >= 300) over "
          f"{args.fast_conns + args.slow_conns} client connections")
    print("(SYN retrans: the host's TcpExt TCPSynRetrans over the phase, every process's connects, not only "
          "this load's and the proxy's; a retransmitted SYN waits 1 s)")
    print("(slow latency includes the requested 1.0-2.0 s sleep; 'stopped copies w/ slow in flight at drain': of the copies "
          "the phase stopped, how many were seen draining (DescribeTargetHealth every 0.2 s) while a slow request "
          "they later answered was in flight (a lower bound: a copy with nothing in flight drains at once and may "
          "never be seen draining), and the median number of such requests)")
    print(f"\ntotal runtime {time.monotonic() - started:.0f} s")
    return 0 if all_ok and not error else 1


if __name__ == "__main__":
    sys.exit(main())
