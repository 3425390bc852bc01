"""The path from a portside listener to a container: direct bridge routing vs Docker's DNAT.

Run: ``python benchmarks/container_path.py [--runs 8] [--duration 4]`` (as root: it pins processes
with ``taskset`` and containers with ``docker update --cpuset-cpus``; needs Debian's ``wrk``; about
2-3 minutes).

Goal: the path from the listener to a container must not pay docker-proxy's cost. This engine runs
``dockerd --userland-proxy=false`` (checked and printed at start), so a published port is an
iptables DNAT rule (127.0.0.1:hostPort -> bridge address:80, with ``route_localnet``), not a
docker-proxy process copying bytes; a second engine with the userland proxy on is not available
here, so docker-proxy itself is not measured. What is measured is whether portside's proxy pays for
DNAT at all: with ``--direct-routing`` (the default) it connects to a local copy at its bridge
address and container port; with ``--no-direct-routing`` at 127.0.0.1:hostPort through the DNAT.

The setup
---------
Cores: each ``portside server`` is pinned to core 0 (``taskset -c 0``); wrk and the nginx copies
share core 1 (``taskset -c 1``, ``docker update --cpuset-cpus 1``), so core 0 is the proxy alone.
Two servers run side by side (own temp state dirs; one idles while the other is measured):

routing on    ``portside server`` (--direct-routing, the default): a service of 4 copies of
              ``portside/nginx-keepalive`` (keep-alive, 1 worker each, answers ``ok <hostname>``)
              in a target group (health check every 5 s) behind an internal HTTP listener;
routing off   the same with ``--no-direct-routing``;
hostport      wrk straight at one copy of the "routing on" service: 127.0.0.1:hostPort (DNAT);
bridge        wrk straight at the same copy's bridge address, port 80.

One measurement: ``taskset -c 1 wrk -t1 -c32 -d<duration>s --latency URL`` (keep-alive), and with
``--close`` (default) also, for the two portside systems only, the same with
``-H 'Connection: close'`` (a new client connection per request to the listener; the proxy keeps
its own target connections alive either way). Not for the direct paths: at ~10-20k new connections/s
to one copy, wrk's source ports come round again while the copy (which closes first) still holds
tens of thousands of TIME_WAIT sockets for them in its own network namespace; colliding SYNs
wait out a 1 s retransmission (hundreds of ``TcpExtTCPSynRetrans`` a second), so whichever direct run
comes second measures the previous run's TIME_WAITs, not the path.

Around each wrk run: the server's CPU time per request and its CPU use (from /proc/PID/stat, user +
system; near 100 % means the proxy's core sets the pace, lower means something else does, or
another process shares core 0) and how busy cores 0 and 1 were (/proc/stat; during the direct runs
nothing of this benchmark runs on core 0, so its busy share there is other processes).

Interleaving: ``--runs`` rounds, each measuring every system once (after one untimed 1 s warm-up
of each at start); tables show medians over the rounds, and the ratios of the medians.

Everything started (servers, services, load balancers, containers, temp dirs) is removed on exit.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
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
    table,
    wait_for_quiet,
)

from portside.agent.engine import userland_proxy_enabled
from portside.images import build_nginx_image

COPIES = 4
CLEAN_SERVER_CPU_PCT = 85.0  # a portside run is "clean" when the server had its core (not starved)
CONNECTIONS = 32
WRK_CPU = "1"
SERVER_CPU = "0"


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_us: float | None  # server CPU per request
    server_pct: float | None  # server CPU use over the run (100 = one core)
    core0: float
    core1: float
    softirq0: float  # core 0 time in softirq (packet processing charged to no process)


@dataclass
class System:
    name: str
    url: str
    server: PortsideServer | None
    runs: dict[str, list[Run]] = field(default_factory=lambda: {"keep-alive": [], "close": []})
    churn_ok: bool = True  # measured with a new connection per request too


def _core_times() -> dict[int, tuple[int, int, int]]:
    """cpu index -> (busy jiffies, softirq jiffies, total jiffies)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                vals = [int(v) for v in m.group(2).split()]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                out[int(m.group(1))] = (sum(vals) - idle, vals[6] if len(vals) > 6 else 0, sum(vals))
    return out


def _busy(before: dict[int, tuple[int, int, int]], after: dict[int, tuple[int, int, int]], cpu: int,
          field_: int = 0) -> float:
    b, a = before.get(cpu, (0, 0, 0)), after.get(cpu, (0, 0, 0))
    total = a[2] - b[2]
    return 100.0 * (a[field_] - b[field_]) / total if total else float("nan")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, duration: float, close: bool) -> tuple[float, float, float, int]:
    argv = ["taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=duration + 30, check=False)
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    text = out.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise BenchError(f"no Requests/sec in wrk output:\n{text}")
    rps = float(m.group(1))
    lat = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", text, re.MULTILINE))

    def pct(key: str) -> float:
        v = lat.get(key)
        if not v:
            return float("nan")
        mm = re.match(r"([\d.]+)(\w+)", v)
        assert mm
        return _ms(mm.group(1), mm.group(2))

    errors = 0
    em = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if em:
        errors += sum(int(x) for x in em.groups())
    nm = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if nm:
        errors += int(nm.group(1))
    return rps, pct("50"), pct("99"), errors


def measure(system: System, duration: float, close: bool) -> Run:
    cpu0 = system.server.cpu_seconds() if system.server else 0.0
    cores0 = _core_times()
    rps, p50, p99, errors = wrk(system.url, duration, close)
    cores1 = _core_times()
    server_us = server_pct = None
    if system.server is not None and rps:
        used = system.server.cpu_seconds() - cpu0
        server_us = used / (rps * duration) * 1e6
        server_pct = 100.0 * used / duration
    return Run(rps, p50, p99, errors, server_us, server_pct, _busy(cores0, cores1, 0), _busy(cores0, cores1, 1),
               _busy(cores0, cores1, 0, 1))


def upstream_peers(server: PortsideServer) -> Counter[str]:
    """The server's established TCP connections by kind of peer: bridge address:80, loopback, other."""
    assert server.proc is not None
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=False).stdout
    kinds: Counter[str] = Counter()
    for line in out.splitlines():
        if f"pid={server.proc.pid}," not in line:
            continue
        fields = line.split()
        local, peer = fields[2], fields[3]
        if peer.endswith(":80") and not peer.startswith("127."):
            kinds["bridge address:80"] += 1
        elif peer.startswith("127.") and not local.endswith(f":{server.port}"):
            kinds["127.0.0.1 (hostPort targets; wrk is gone)"] += 1
        else:
            kinds["other"] += 1
    return kinds


def _pin(engine: Any, service: Service) -> list[Any]:
    containers = []
    for task in service.tasks():
        c = container_of_task(engine, task["taskArn"])
        if c is None:
            raise BenchError(f"no container for {task['taskArn']}")
        c.update(cpuset_cpus=WRK_CPU)
        c.reload()
        containers.append(c)
    return containers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--close", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure with a new client connection per request")
    ap.add_argument("--quiet-load", type=float, default=2.0)
    ap.add_argument("--quiet-wait", type=float, default=600.0)
    args = ap.parse_args()
    started = time.monotonic()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("container_path: needs wrk and taskset (apt-get install wrk util-linux)", file=sys.stderr)
        return 2

    engine = docker.from_env()
    image = build_nginx_image(engine)
    userland = userland_proxy_enabled()
    print(f"container_path: image {image}; docker userland proxy (docker-proxy) enabled: {userland}")
    dockerd = subprocess.run(["pgrep", "-a", "dockerd"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"  dockerd: {dockerd or '?'}")
    load_start = wait_for_quiet(args.quiet_load, args.quiet_wait)
    print(f"  load average at start: {load_start:.2f}", flush=True)

    on = PortsideServer("--direct-routing", cpus=SERVER_CPU, stop_timeout=5)
    off = PortsideServer("--no-direct-routing", cpus=SERVER_CPU, stop_timeout=5)
    services: list[Service] = []
    systems: list[System] = []
    error = None
    try:
        for server, name in ((on, "path-on"), (off, "path-off")):
            server.start()
            svc = Service(server, name)
            services.append(svc)
            svc.create(image, COPIES, hc_path="/", hc_interval=5, dereg_delay=1, stop_timeout=5)
        for svc in services:
            svc.wait_stable(COPIES)
        pinned = [_pin(engine, svc) for svc in services]
        one = pinned[0][0]
        task0 = next(t for t in services[0].tasks() if container_of_task(engine, t["taskArn"]).id == one.id)
        hp = host_port(task0)
        bridge_ip = one.attrs["NetworkSettings"]["IPAddress"]
        systems = [
            System("portside --direct-routing (bridge IP:80)", f"http://127.0.0.1:{services[0].listener_port}/", on),
            System("portside --no-direct-routing (127.0.0.1:hostPort, DNAT)",
                   f"http://127.0.0.1:{services[1].listener_port}/", off),
            System("direct: one copy at 127.0.0.1:hostPort (DNAT)", f"http://127.0.0.1:{hp}/", None, churn_ok=False),
            System("direct: one copy at bridge IP:80", f"http://{bridge_ip}:80/", None, churn_ok=False),
        ]
        # every system answers, and the proxies reach every copy
        for sys_ in systems[:2]:
            seen = set()
            for _ in range(40):
                seen.add(subprocess.run(["curl", "-s", sys_.url], capture_output=True, text=True, timeout=5, check=True).stdout.strip())
            if len(seen) != COPIES:
                raise BenchError(f"{sys_.name}: {len(seen)} distinct copies answered, wanted {COPIES}: {seen}")
        modes = [("keep-alive", False)] + ([("close", True)] if args.close else [])
        print("  warm-up (untimed) ...", flush=True)
        for sys_ in systems:
            for _mode, close in modes:
                if sys_.churn_ok or not close:
                    wrk(sys_.url, 1, close)
        # where each server's upstream (target) connections go: its keep-alive pools stay open after wrk
        for server, label in ((on, "--direct-routing"), (off, "--no-direct-routing")):
            wrk(f"http://127.0.0.1:{services[0 if server is on else 1].listener_port}/", 1, False)
            peers = upstream_peers(server)
            print(f"  established connections of the {label} server after a warm-up: "
                  + (", ".join(f"{n} to {k}" for k, n in peers.items()) or "none"), flush=True)
        for rnd in range(1, args.runs + 1):
            for mode, close in modes:
                for sys_ in systems:
                    if close and not sys_.churn_ok:
                        continue
                    r = measure(sys_, args.duration, close)
                    sys_.runs[mode].append(r)
                    srv = f", server CPU {r.server_pct:.0f} %" if r.server_pct is not None else ""
                    print(f"  round {rnd} {mode:10s} {sys_.name}: {r.rps:,.0f} req/s, p99 {r.p99_ms:.2f} ms, "
                          f"core0 {r.core0:.0f} % (softirq {r.softirq0:.0f} %), core1 {r.core1:.0f} %{srv}", flush=True)
    except BenchError as exc:
        error = str(exc)
        print(f"  ERROR: {error}", file=sys.stderr)
    finally:
        for svc in services:
            svc.delete()
        for server in (on, off):
            server.stop()
            left = server.remove_leftovers(engine)
            if left:
                print(f"  teardown: removed {left} leftover portside containers", file=sys.stderr)
            if error:
                print(server.log_tail(2000), file=sys.stderr)
            server.cleanup_dir()
    if error or not systems:
        return 1
    load_end = load_average()

    print()
    print(f"Listener -> container path: wrk -t1 -c{CONNECTIONS} -d{args.duration:g}s on core {WRK_CPU} (with the "
          f"nginx copies), portside on core {SERVER_CPU}; {args.runs} interleaved rounds, medians; docker userland "
          f"proxy: {'on' if userland else 'off' if userland is False else 'unknown'}; load average "
          f"{load_start:.2f} at start, {load_end:.2f} at end")
    ok = True
    for mode, _close in modes:
        rows = []
        base = median([r.rps for r in systems[0].runs[mode]])
        for sys_ in systems:
            runs = sys_.runs[mode]
            if not runs:
                continue
            rps = median([r.rps for r in runs])
            cpu = [r.server_us for r in runs if r.server_us is not None]
            pct = [r.server_pct for r in runs if r.server_pct is not None]
            clean = [r.rps for r in runs if r.server_pct is not None and r.server_pct >= CLEAN_SERVER_CPU_PCT]
            rows.append([
                sys_.name, f"{rps:,.0f}", f"{rps / base:.2f}", f"{max(r.rps for r in runs):,.0f}",
                f"{median(clean):,.0f} ({len(clean)})" if clean else ("-" if sys_.server is None else "none (0)"),
                f"{median([r.p50_ms for r in runs]):.2f}", f"{median([r.p99_ms for r in runs]):.2f}",
                sum(r.errors for r in runs),
                f"{median(cpu):.1f}" if cpu else "-", f"{median(pct):.0f}" if pct else "-",
                f"{median([r.core0 for r in runs]):.0f}", f"{median([r.softirq0 for r in runs]):.0f}",
                f"{median([r.core1 for r in runs]):.0f}",
                " ".join(f"{r.rps / 1000:.1f}k" for r in runs),
            ])
        print(f"\n{mode}:")
        print(table(["system", "req/s med", "vs on", "req/s best", "clean med (n)", "p50 ms", "p99 ms", "errors",
                     "server us/req", "server CPU %", "core0 %", "c0 softirq %", "core1 %", "per round"], rows))
        on_runs, off_runs = systems[0].runs[mode], systems[1].runs[mode]
        on_rps, off_rps = median([r.rps for r in on_runs]), median([r.rps for r in off_runs])
        on_best, off_best = max(r.rps for r in on_runs), max(r.rps for r in off_runs)
        on_clean = [r.rps for r in on_runs if (r.server_pct or 0) >= CLEAN_SERVER_CPU_PCT]
        off_clean = [r.rps for r in off_runs if (r.server_pct or 0) >= CLEAN_SERVER_CPU_PCT]
        on_us = median([r.server_us for r in on_runs if r.server_us is not None])
        off_us = median([r.server_us for r in off_runs if r.server_us is not None])
        line = (f"ratios ({mode}), routing on / off: median {on_rps / off_rps:.3f}, best {on_best / off_best:.3f}, "
                + (f"clean median {median(on_clean) / median(off_clean):.3f}" if on_clean and off_clean
                   else "clean median n/a (no clean runs)")
                + f"; server CPU per request {on_us:.1f} (on) vs {off_us:.1f} us (off)")
        if systems[2].runs[mode] and systems[3].runs[mode]:
            hp_rps = median([r.rps for r in systems[2].runs[mode]])
            br_rps = median([r.rps for r in systems[3].runs[mode]])
            line += (f"; direct bridge / hostport {br_rps / hp_rps:.3f}; through the listener (on) / direct bridge "
                     f"{on_rps / br_rps:.3f}")
        print(line)
        if mode == "keep-alive":
            # not slower: by the best run and, when there are clean runs of both, by their medians
            verdict = on_best >= 0.98 * off_best and (not (on_clean and off_clean)
                                                      or median(on_clean) >= 0.98 * median(off_clean))
            ok = ok and verdict
    print(f"(clean: portside runs in which the server used >= {CLEAN_SERVER_CPU_PCT:.0f} % of its core, i.e. was "
          "not starved by other processes on core 0; best: the highest of the rounds, which noise can only lower)")
    print(f"\ngoal: the listener's path to a copy pays no docker-proxy (userland proxy off: "
          f"{'yes' if userland is False else 'NO'}) and --direct-routing is not slower than the DNAT path "
          "(keep-alive: best, and clean median, within 2 %) "
          f"-> {'MET' if ok and userland is False else 'MISSED'}")
    print(f"total runtime {time.monotonic() - started:.0f} s")
    return 0 if ok and userland is False else 1


if __name__ == "__main__":
    sys.exit(main())
