"""Scale-out latency: UpdateService(desiredCount + 1) to the first request the new copy serves.

Run: ``python benchmarks/scale_latency.py [--repeats 7] [--instrumented 5]`` (as root or a user who
may talk to the Docker Engine; the nginx image is built locally ``FROM scratch``; about 2 minutes).

Goal: median <= 0.6 s on this machine with a target group health check interval of 5 s (ALB's
defaults give 30 s or more: 2 checks x 10-30 s plus registration), printed beside a bare
``docker run -d -p 127.0.0.1::80`` of the same image until its host port answers, measured in the
same run.

What one measurement is
-----------------------
portside
    One ``portside server`` (own temp state dir, ``--min-health-check-interval 1`` though the group
    uses 5 s) and a service of 2 copies of ``portside/nginx-keepalive`` (``hostPort: 0``) in a
    target group (HealthCheckIntervalSeconds 5, HealthyThresholdCount 2, path ``/``,
    deregistration delay 1 s) behind an internal HTTP listener. A client thread sends keep-alive
    ``GET /`` over one connection to the listener, one every ``--pace-ms`` (1 ms; about 400-700/s),
    and notes which copy answered (nginx answers ``ok <hostname>``). t0 is taken just before
    ``UpdateService(desiredCount=3)``; t1 is when a hostname that is not one of the 2 running
    copies first answers through the listener. The proxy balances round robin per request, so with
    3 copies the new one is asked every third request: t1 is late by at most ~3 x the pace.
    Then the service is scaled back to 2 and the script waits until it is stable (2 RUNNING
    tasks, 2 healthy targets, nothing draining), plus ``SETTLE_S``.

docker (the peer)
    t0, then ``docker run -d -p 127.0.0.1::80 --label portside.bench=1 IMAGE`` (the real CLI),
    the host port read from the engine API, then ``GET /`` on it every 2 ms until it answers
    200; t1 is that answer. Then ``docker rm -f``. The listener client is paused meanwhile.

Interleaving: each repeat runs portside, docker, and (for the first ``--instrumented`` repeats)
an instrumented portside round. One untimed warm-up of each first.

Breakdown (where the time goes), as seconds after t0:
    api      UpdateService returned
    created  the task's ``createdAt`` (the service controller admitted it)
    d.creat  the container's ``Created`` (Docker)
    d.start  the container's ``State.StartedAt`` (Docker: the process started)
    running  the task's ``startedAt`` (the agent saw the container running, lastStatus RUNNING)
    regist.  instrumented rounds only: the target first listed by DescribeTargetHealth (polled
             every ``POLL_S`` from another thread; the polling itself costs the server some CPU,
             which is why those rounds are kept apart from the plain ones)
    healthy  instrumented rounds only: first listed as healthy by that poller
    syn, hc.sent, hc.ok, req.sent, req.ok
             instrumented rounds only, from a passive capture on the Docker bridge (AF_PACKET,
             kernel timestamps; only the first time of each event per container address is
             kept): the first SYN to the copy's bridge address port 80, the first health check
             request (``User-Agent: ELB-HealthChecker``), the first 200 answering one, the first
             proxied request, and the copy's response to it. With --direct-routing (the default)
             health checks and proxied requests both go to the bridge address, so they cross it.
             These have ~0.1 ms resolution where the 10 ms poller cannot split steps that take 5 ms.
             Also: ``rst``, the first RST from the copy's port 80 (a probe or connection refused
             because nginx did not listen yet), and the number of SYNs to port 80 before the first
             health check 200 (1 = the first probe succeeded).
    cli      docker peer only: ``docker run`` returned
    served   t1
Timestamps of the task come from the server's clock, the container's from dockerd's, t0 and t1 from
this script's (``time.time()``): the same host clock.

Everything started (server, service, load balancer, containers, temp dir) is removed on exit.
"""

from __future__ import annotations

import argparse
import math
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker
from _service_bench import (
    BenchError,
    PortsideServer,
    Service,
    container_of_task,
    docker_time,
    host_port,
    load_average,
    median,
    percentile,
    table,
    wait_for_quiet,
)

from portside.agent.engine import userland_proxy_enabled
from portside.images import build_nginx_image

GOAL_S = 0.6
HC_INTERVAL_S = 5
HEALTHY_THRESHOLD = 2
DEREG_DELAY_S = 1
BASE_COUNT = 2
SETTLE_S = 1.0
POLL_S = 0.01
ROUND_TIMEOUT_S = 30.0
PEER_LABEL = "portside.bench=1"


# --------------------------------------------------------------------------- the listener client


class Hammer(threading.Thread):
    """Keep-alive GET / to the listener in a loop; records when a hostname not in ``known`` answers."""

    def __init__(self, port: int, pace_s: float) -> None:
        super().__init__(name="hammer", daemon=True)
        self.port = port
        self.pace_s = pace_s
        self.known: frozenset[str] = frozenset()
        self.first_new: tuple[float, str] | None = None
        self.new_event = threading.Event()
        self.running = threading.Event()
        self.stopping = False
        self.requests = 0
        self.errors: list[str] = []
        self._busy = threading.Lock()  # held while a request is in flight

    def arm(self, known: set[str]) -> None:
        self.known = frozenset(known)
        self.first_new = None
        self.new_event.clear()

    def pause(self) -> None:
        self.running.clear()
        with self._busy:  # the request in flight finishes first
            pass

    def run(self) -> None:
        sock: socket.socket | None = None
        buf = b""
        request = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: scale-latency\r\n\r\n"
        while not self.stopping:
            if not self.running.wait(0.1):
                continue
            with self._busy:
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        buf = b""
                    sock.sendall(request)
                    while b"\r\n\r\n" not in buf:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise ConnectionError("closed before a response")
                        buf += chunk
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    status = int(lines[0].split()[1])
                    length = 0
                    close = False
                    for line in lines[1:]:
                        name, _, value = line.partition(b":")
                        name = name.strip().lower()
                        if name == b"content-length":
                            length = int(value)
                        elif name == b"connection" and value.strip().lower() == b"close":
                            close = True
                    while len(buf) < length:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise ConnectionError("closed mid-body")
                        buf += chunk
                    body, buf = buf[:length], buf[length:]
                    now = time.time()
                    self.requests += 1
                    if status != 200:
                        self.errors.append(f"status {status}")
                    else:
                        name = body.decode(errors="replace").split()[-1]
                        if self.first_new is None and name not in self.known:
                            self.first_new = (now, name)
                            self.new_event.set()
                    if close:
                        sock.close()
                        sock = None
                except (OSError, ValueError, IndexError) as exc:
                    self.errors.append(type(exc).__name__ + ": " + str(exc))
                    if sock is not None:
                        sock.close()
                    sock = None
                    time.sleep(0.01)
            if self.pace_s:
                time.sleep(self.pace_s)
        if sock is not None:
            sock.close()


class BridgeSniffer(threading.Thread):
    """Passive capture on the bridge (AF_PACKET, kernel timestamps) of the first packets to/from port 80.

    Per container address it keeps only the first time of: a SYN to port 80 (a probe or a proxy
    connection), a health check request (``User-Agent: ELB-HealthChecker``), a 200 answering it,
    a proxied request (any other GET) and the response to it. With --direct-routing (the
    default) both the health checks and the proxied requests go to the copy's bridge address,
    so they cross this interface. Nothing but these per-address first times is stored.
    """

    SO_TIMESTAMPNS = 35

    def __init__(self, interface: str) -> None:
        super().__init__(name="bridge-sniffer", daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL: outgoing too
        self.sock.bind((interface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.05)
        self.first: dict[tuple[str, str], float] = {}  # (container ip, event) -> time
        self.kind: dict[tuple[str, int], str] = {}  # (container ip, client port) -> "hc" | "req"
        self.syns: dict[str, int] = {}  # container ip -> SYNs to port 80 before the first health check 200
        self.stop_flag = threading.Event()

    def _note(self, ip: str, event: str, t: float) -> None:
        if (ip, event) not in self.first and len(self.first) < 20000:
            self.first[(ip, event)] = t

    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                try:
                    data, anc, _flags, _addr = self.sock.recvmsg(2048, 64)
                except TimeoutError:
                    continue
                t = time.time()
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == self.SO_TIMESTAMPNS and len(value) >= 16:
                        sec, nsec = struct.unpack("qq", value[:16])
                        t = sec + nsec / 1e9
                if len(data) < 34 or data[12:14] != b"\x08\x00":
                    continue
                ihl = (data[14] & 0x0F) * 4
                if data[23] != 6:
                    continue
                src, dst = socket.inet_ntoa(data[26:30]), socket.inet_ntoa(data[30:34])
                tcp = 14 + ihl
                if len(data) < tcp + 20:
                    continue
                sport, dport = struct.unpack("!HH", data[tcp : tcp + 4])
                flags = data[tcp + 13]
                payload = data[tcp + ((data[tcp + 12] >> 4) * 4) :]
                if dport == 80:
                    if flags & 0x02 and not flags & 0x10:
                        self._note(dst, "syn", t)
                        if (dst, "hc.ok") not in self.first and len(self.syns) < 20000:
                            self.syns[dst] = self.syns.get(dst, 0) + 1
                    elif payload.startswith(b"GET "):
                        kind = "hc" if b"ELB-HealthChecker" in payload else "req"
                        if len(self.kind) < 20000:
                            self.kind[(dst, sport)] = kind
                        self._note(dst, f"{kind}.sent", t)
                elif sport == 80 and flags & 0x04:
                    self._note(src, "rst", t)  # e.g. connection refused: nothing listens yet
                elif sport == 80 and payload.startswith(b"HTTP/1."):
                    kind = self.kind.get((src, dport))
                    if kind is not None:
                        ok = payload[9:12] == b"200"
                        self._note(src, f"{kind}.{'ok' if ok else 'bad'}", t)
        finally:
            self.sock.close()


class HealthPoller(threading.Thread):
    """DescribeTargetHealth every POLL_S: first time each port is listed, and first time healthy."""

    def __init__(self, service: Service) -> None:
        super().__init__(name="health-poller", daemon=True)
        self.elb = service.server.client("elbv2")
        self.tg_arn = service.tg_arn
        self.listed: dict[int, float] = {}
        self.healthy: dict[int, float] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                answer = self.elb.describe_target_health(TargetGroupArn=self.tg_arn)
            except Exception:  # noqa: BLE001 - keep polling; a miss only coarsens the breakdown
                time.sleep(POLL_S)
                continue
            now = time.time()
            for d in answer["TargetHealthDescriptions"]:
                port = int(d["Target"]["Port"])
                self.listed.setdefault(port, now)
                if d["TargetHealth"]["State"] == "healthy":
                    self.healthy.setdefault(port, now)
            self.stop_flag.wait(POLL_S)


# --------------------------------------------------------------------------- rounds


@dataclass
class Sample:
    total: float
    phases: dict[str, float] = field(default_factory=dict)


def _hostname(container: Any) -> str:
    return str(container.attrs["Config"]["Hostname"])


def _container_times(container: Any) -> tuple[float, float]:
    container.reload()
    return docker_time(container.attrs["Created"]), docker_time(container.attrs["State"]["StartedAt"])


def portside_round(service: Service, engine: Any, hammer: Hammer, instrumented: bool, bridge: str) -> Sample:
    service.wait_stable(BASE_COUNT)
    before = service.tasks()
    old_arns = {t["taskArn"] for t in before}
    known = set()
    for t in before:
        c = container_of_task(engine, t["taskArn"])
        if c is None:
            raise BenchError(f"no container for task {t['taskArn']}")
        known.add(_hostname(c))
    hammer.arm(known)
    hammer.running.set()
    time.sleep(0.3)  # the client is in its stride before t0
    if hammer.first_new is not None:
        raise BenchError(f"an unknown copy {hammer.first_new[1]} answered before the scale-out")
    poller = HealthPoller(service) if instrumented else None
    sniffer = BridgeSniffer(bridge) if instrumented else None
    try:
        for thread in (poller, sniffer):
            if thread is not None:
                thread.start()
        if instrumented:
            time.sleep(0.2)
        t0 = time.time()
        service.ecs.update_service(service=service.name, desiredCount=BASE_COUNT + 1)
        t_api = time.time()
        if not hammer.new_event.wait(ROUND_TIMEOUT_S):
            raise BenchError(f"the new copy did not answer through the listener within {ROUND_TIMEOUT_S:g} s; "
                             f"client errors: {hammer.errors[-3:]}")
        assert hammer.first_new is not None
        t1 = hammer.first_new[0]
        hammer.pause()
        new = [t for t in service.tasks() if t["taskArn"] not in old_arns]
        port = host_port(new[0]) if len(new) == 1 else None
        if poller is not None and port is not None:
            # keep polling until the new target has been seen healthy (at most 2 s more)
            deadline = time.monotonic() + 2.0
            while port not in poller.healthy and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        for thread in (poller, sniffer):
            if thread is not None:
                thread.stop_flag.set()
                thread.join(5)
    phases: dict[str, float] = {"api": t_api - t0}
    if len(new) == 1:
        task = new[0]
        phases["created"] = task["createdAt"].timestamp() - t0
        if "startedAt" in task:
            phases["running"] = task["startedAt"].timestamp() - t0
        c = container_of_task(engine, task["taskArn"])
        if c is not None:
            created, started = _container_times(c)
            phases["d.creat"], phases["d.start"] = created - t0, started - t0
            if _hostname(c) != hammer.first_new[1]:
                raise BenchError(f"first new answer came from {hammer.first_new[1]}, not the new task's {_hostname(c)}")
            ip = c.attrs["NetworkSettings"]["IPAddress"]
            if sniffer is not None and ip:
                for event, col in (("syn", "syn"), ("hc.sent", "hc.sent"), ("hc.ok", "hc.ok"),
                                   ("req.sent", "req.sent"), ("req.ok", "req.ok")):
                    if (ip, event) in sniffer.first:
                        phases[col] = sniffer.first[(ip, event)] - t0
                for event in ("hc.bad", "rst"):
                    if (ip, event) in sniffer.first:
                        phases[event] = sniffer.first[(ip, event)] - t0
                phases["syns"] = float(sniffer.syns.get(ip, 0))
        if poller is not None and port is not None:
            if port in poller.listed:
                phases["regist."] = poller.listed[port] - t0
            if port in poller.healthy:
                phases["healthy"] = poller.healthy[port] - t0
    phases["served"] = t1 - t0
    # back to BASE_COUNT
    service.ecs.update_service(service=service.name, desiredCount=BASE_COUNT)
    service.wait_stable(BASE_COUNT)
    time.sleep(SETTLE_S)
    return Sample(t1 - t0, phases)


def _get_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.25) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            s.settimeout(0.25)
            return s.recv(64).split(b" ", 2)[1:2] == [b"200"]
    except (OSError, IndexError):
        return False


def docker_round(engine: Any, image: str) -> Sample:
    t0 = time.time()
    out = subprocess.run(
        ["docker", "run", "-d", "-p", "127.0.0.1::80", "--label", PEER_LABEL, image],
        capture_output=True, text=True, timeout=60, check=False,
    )
    t_cli = time.time()
    if out.returncode != 0:
        raise BenchError(f"docker run failed: {out.stderr.strip()}")
    cid = out.stdout.strip()
    try:
        ports = engine.api.port(cid, 80)
        port = int(ports[0]["HostPort"])
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while not _get_ok(port):
            if time.monotonic() > deadline:
                raise BenchError(f"docker copy on port {port} did not answer within {ROUND_TIMEOUT_S:g} s")
            time.sleep(0.002)
        t1 = time.time()
        created, started = _container_times(engine.containers.get(cid))
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60, check=False)
    time.sleep(SETTLE_S)
    return Sample(t1 - t0, {"d.creat": created - t0, "d.start": started - t0, "cli": t_cli - t0, "served": t1 - t0})


# --------------------------------------------------------------------------- main


def fmt(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--instrumented", type=int, default=5, help="extra portside rounds with DescribeTargetHealth polling")
    ap.add_argument("--pace-ms", type=float, default=1.0, help="pause between the listener client's requests")
    ap.add_argument("--quiet-load", type=float, default=2.0, help="wait (up to --quiet-wait) for load average below this")
    ap.add_argument("--quiet-wait", type=float, default=600.0)
    args = ap.parse_args()
    started = time.monotonic()

    engine = docker.from_env()
    image = build_nginx_image(engine)
    bridge = engine.networks.get("bridge").attrs["Options"].get("com.docker.network.bridge.name", "docker0")
    print(f"scale_latency: image {image}; docker userland proxy enabled: {userland_proxy_enabled()}")
    load = wait_for_quiet(args.quiet_load, args.quiet_wait)
    print(f"  load average at start: {load:.2f}")

    server = PortsideServer(stop_timeout=5)
    service: Service | None = None
    hammer: Hammer | None = None
    plain: list[Sample] = []
    inst: list[Sample] = []
    peer: list[Sample] = []
    try:
        server.start()
        service = Service(server, "scale-latency")
        service.create(image, BASE_COUNT, hc_path="/", hc_interval=HC_INTERVAL_S, healthy_threshold=HEALTHY_THRESHOLD,
                       dereg_delay=DEREG_DELAY_S, stop_timeout=5)
        service.wait_stable(BASE_COUNT)
        hammer = Hammer(service.listener_port, args.pace_ms / 1000.0)
        hammer.start()
        print("  warm-up (untimed) ...", flush=True)
        portside_round(service, engine, hammer, instrumented=False, bridge=bridge)
        docker_round(engine, image)
        for i in range(args.repeats):
            s = portside_round(service, engine, hammer, instrumented=False, bridge=bridge)
            plain.append(s)
            print(f"  round {i + 1}: portside {s.total:.3f} s", end="", flush=True)
            d = docker_round(engine, image)
            peer.append(d)
            print(f", docker {d.total:.3f} s", end="", flush=True)
            if i < args.instrumented:
                s2 = portside_round(service, engine, hammer, instrumented=True, bridge=bridge)
                inst.append(s2)
                print(f", portside (instrumented) {s2.total:.3f} s", end="")
            print(flush=True)
        load_end = load_average()
    finally:
        if hammer is not None:
            hammer.stopping = True
            hammer.running.set()
            hammer.join(5)
        if service is not None:
            service.delete()
        server.stop()
        left = server.remove_leftovers(engine)
        for c in engine.containers.list(all=True, filters={"label": PEER_LABEL}):
            c.remove(force=True)
        server.cleanup_dir()
        if left:
            print(f"  teardown: removed {left} leftover portside containers", file=sys.stderr)

    def stats(samples: list[Sample]) -> tuple[float, float]:
        totals = [s.total for s in samples]
        return median(totals), percentile(totals, 90)

    p_med, p_p90 = stats(plain)
    i_med, i_p90 = stats(inst)
    d_med, d_p90 = stats(peer)
    print()
    print(f"Scale-out latency, UpdateService(desiredCount {BASE_COUNT} -> {BASE_COUNT + 1}) to the first request the "
          f"new copy serves through the listener\n(health check interval {HC_INTERVAL_S} s, HealthyThreshold "
          f"{HEALTHY_THRESHOLD}; {len(plain)} rounds each, interleaved; load average {load:.2f} at start, "
          f"{load_end:.2f} at end)")
    print(table(
        ["system", "n", "median s", "p90 s", "min s", "max s"],
        [
            ["portside (through listener)", len(plain), fmt(p_med), fmt(p_p90),
             fmt(min(s.total for s in plain)), fmt(max(s.total for s in plain))],
            ["portside, instrumented", len(inst), fmt(i_med), fmt(i_p90),
             fmt(min((s.total for s in inst), default=None)), fmt(max((s.total for s in inst), default=None))],
            ["docker run -d -p (peer)", len(peer), fmt(d_med), fmt(d_p90),
             fmt(min(s.total for s in peer)), fmt(max(s.total for s in peer))],
        ],
    ))
    ok = p_med <= GOAL_S
    print(f"goal: portside median <= {GOAL_S} s: {p_med:.3f} s -> {'MET' if ok else 'MISSED'}; "
          f"portside / docker median = {p_med / d_med:.2f}x (+{p_med - d_med:.3f} s)")
    print(f"listener client: {hammer.requests if hammer else 0} requests, "
          f"{len(hammer.errors) if hammer else 0} errors {hammer.errors[:3] if hammer else ''}")
    print()
    print("Breakdown: median seconds after t0 at which each step was seen (per-round values below)")
    cols = ["api", "created", "d.creat", "d.start", "running", "regist.", "syn", "hc.sent", "hc.ok", "healthy",
            "req.sent", "req.ok", "rst", "cli", "served"]
    rows = []
    for label, samples in (("portside", plain), ("portside, instrumented", inst), ("docker (peer)", peer)):
        row: list[Any] = [label]
        for col in cols:
            vals = [s.phases[col] for s in samples if col in s.phases]
            row.append(fmt(median(vals)) if vals else "-")
        rows.append(row)
    print(table(["system", *cols], rows))
    print()
    print("Step durations (medians of per-round differences), portside, instrumented rounds where needed:")
    steps = [
        ("UpdateService -> task admitted (createdAt)", plain, None, "created"),
        ("admitted -> container created (docker Created)", plain, "created", "d.creat"),
        ("container created -> process started (docker StartedAt)", plain, "d.creat", "d.start"),
        ("process started -> agent sees RUNNING (task startedAt)", plain, "d.start", "running"),
        ("RUNNING -> first SYN to the copy's port 80 (registration, checker started)", inst, "running", "syn"),
        ("first SYN -> first health check request sent", inst, "syn", "hc.sent"),
        ("health check request -> its 200 (the copy answers)", inst, "hc.sent", "hc.ok"),
        ("health check 200 -> first proxied request sent to the copy", inst, "hc.ok", "req.sent"),
        ("proxied request -> the copy's response", inst, "req.sent", "req.ok"),
        ("the copy's response -> the client has it (served)", inst, "req.ok", "served"),
        ("(poller) RUNNING -> target listed", inst, "running", "regist."),
        ("(poller) RUNNING -> listed healthy", inst, "running", "healthy"),
        ("RUNNING -> first request served", plain, "running", "served"),
        ("docker peer: t0 -> docker Created", peer, None, "d.creat"),
        ("docker peer: Created -> StartedAt", peer, "d.creat", "d.start"),
        ("docker peer: StartedAt -> first 200", peer, "d.start", "served"),
    ]
    srows = []
    for what, samples, a, b in steps:
        diffs = [s.phases[b] - (s.phases[a] if a else 0.0) for s in samples if b in s.phases and (a is None or a in s.phases)]
        srows.append([what, fmt(median(diffs)), fmt(percentile(diffs, 90)), len(diffs)])
    print(table(["step", "median s", "p90 s", "n"], srows))
    print()
    print("Per round (seconds after t0):")
    prow = []
    for label, samples in (("portside", plain), ("inst", inst), ("docker", peer)):
        for i, s in enumerate(samples):
            syns = s.phases.get("syns")
            prow.append([f"{label} {i + 1}", *[fmt(s.phases.get(c)) for c in cols], "-" if syns is None else int(syns)])
    print(table(["round", *cols, "SYNs to hc 200"], prow))
    print(f"\ntotal runtime {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
