"""The load balancer benchmark: portside's listener beside HAProxy and nginx, and beside no proxy.

Run: ``python benchmarks/lb.py [--runs 5] [--duration 5]`` (as root or a user who may run
nginx/haproxy on loopback ports; needs Debian's ``wrk``, ``haproxy``, ``nginx``, ``taskset``, and
``py-spy`` and ``perf`` for the profiles; takes about runs x duration x 24 s plus ~1.5 min, ~12 min
by default on a quiet machine, longer when runs disturbed by other processes are repeated).

Goals (issue): portside with every feature on (forwarded headers added, listener rules evaluated,
health-aware balancing) serves at least 0.8x HAProxy's requests/s with a p99 no worse than 2x
HAProxy's; with a new client connection per request at least 0.6x HAProxy's requests/s. Also
reported: the p99 latency each proxy adds at half of portside's measured maximum rate, and each
portside feature's cost in microseconds per request.

The setup
---------
Cores: the proxy under test is pinned to core 0 (``taskset -c 0``); wrk and the backends share
core 1 (``taskset -c 1``). Only 127.0.0.1 is used; every port is picked free at start.

Backends: ONE nginx master with ONE worker listening on four loopback ports (keep-alive,
``keepalive_requests 1000000``, ``return 200 "ok\\n"``). One worker rather than four single-worker
instances: all four would share core 1 with wrk anyway, and one event loop serving four sockets
costs less there than four processes context-switching; to every proxy they are four targets.

The systems, all started by this script:

direct    wrk against one backend port, no proxy (the ceiling the load generator allows).
haproxy   Debian's HAProxy, ``nbthread 1``, global ``maxconn 4000`` (the FD limit here is 20000),
          ``balance roundrobin``, ``http-reuse always``, keep-alive both sides.
nginx     Debian's nginx as a proxy: 1 worker, ``upstream`` with ``keepalive 64``,
          ``proxy_http_version 1.1``, ``proxy_set_header Connection ""``.
portside  a real ``portside server`` process (own temp state dir, ``--min-health-check-interval 1``,
          ``--firewall managed`` unless ``--firewall`` says otherwise: its host rules are in place)
          configured only through boto3's elbv2 client: an internal load balancer, an ``ip``
          target group holding the four backends (health check every 2 s), an HTTP listener
          forwarding by default, and 10 listener rules (``path-pattern /svcN/*`` -> fixed-response)
          that the benchmark path ``/`` never matches, so all 10 are evaluated per request.

Same work per request: HAProxy and nginx get the equivalent configuration, so all three proxies
do what portside does: the same 10 non-matching path rules (HAProxy ``http-request return ... if
{ path_beg /svcN/ }``, nginx ``location /svcN/``), the same added headers (X-Forwarded-For,
-Proto, -Port and a random per-request X-Amzn-Trace-Id; HAProxy via ``option forwardfor`` /
``set-header`` / ``%[uuid]``, nginx via ``proxy_set_header`` / ``$request_id``), and for HAProxy
active health checks (``check inter 2s``); nginx open source has only passive checks. Before
measuring, each proxy is checked to answer ``/`` from the backends and ``/svc3/x`` from a rule.

One measurement: ``taskset -c 1 wrk -t1 -c32 -d<duration>s --latency URL`` (keep-alive), or the
same with ``-H 'Connection: close'`` (a new client connection per request; the proxies keep their
backend connections alive). Requests/s, p50 and p99 come from wrk's output. Around each wrk run
the script also reads /proc: the proxy's CPU time (process and children) per request and its
CPU use, and how busy cores 0 and 1 were (core 1 near 100 % means wrk + backends, not the proxy,
set the pace; ``direct`` always runs core 1 flat out).

Interleaving: each of ``--runs`` rounds measures direct, haproxy, nginx, portside in keep-alive
mode, then the same in close mode; tables show the median of the rounds per system. Every system
gets an untimed 1 s warm-up first.

Half-rate latency: wrk2 (constant rate) is not in Debian, so the rate is paced with plain wrk and a
Lua ``delay()`` of ``PACE_DELAY_MS`` after every response on each connection: N connections give
about N / (delay + latency) requests/s. The target is half of portside's median keep-alive
maximum, the same for every system; N is calibrated per system (two 2 s trial runs, since a
slower proxy's latency lowers the rate N connections give), then the systems are measured
interleaved over ``--runs`` rounds. "Added p99" is a system's median p99 minus direct's (and,
beside it, minus HAProxy's). wrk measures latency from the write of a request, so the delay is
not counted. Caveat: for ``direct`` wrk and the backend share core 1, so its latency includes
their context switches; through a proxy the work is split over two cores. This is closed-loop
per connection (a stalled proxy delays that connection's later requests instead of queueing
them, unlike wrk2), which understates tail latency under stalls; at half load stalls are rare.

Feature costs: portside has no public switches for most features, so a second, standalone proxy
(this file with ``--serve-proxy``: builds an ``LbConfig`` directly and runs ``ProxyRuntime`` under
uvloop, ``taskset -c 0``) runs in variants, one process each, started together and measured
interleaved in keep-alive mode over ``--runs`` rounds:

base          only a default forward rule; round_robin; retries on; no stickiness; no slow start
rules10/50    + 10 / 50 non-matching path-pattern rules (every one evaluated per request)
no-retries    ``ProxyRuntime(retries=False)`` (shown as the cost of retries being on)
least-outst.  algorithm least_outstanding_requests instead of round_robin
sticky-new    lb_cookie stickiness, client sends no cookie (a cookie is minted every request)
sticky-cookie lb_cookie stickiness, client sends a valid AWSALB cookie (decoded + re-issued)
slow-start    slow_start 900 s, measured inside the ramp (3 of the 4 targets are in it)
pure-python   base with ``PORTSIDE_PURE_PYTHON=1``: the hot path from its Python source instead of the
              modules mypyc compiled at install (its "cost" is what compiling saves; shown as it is
              when the install has no compiled modules, and then both run the same code)

cost in us/request = (1/rps_variant - 1/rps_base) x 1e6 on the median rates (for retries:
base minus no-retries). The CPU-time difference per request is shown beside it as a cross-check.
The forwarded headers (X-Forwarded-For/-Proto/-Port, X-Amzn-Trace-Id) have no switch: their cost
is estimated from a py-spy profile of ``pure-python`` (py-spy sees no compiled frames;
``py-spy record --nonblocking -r 500 -f raw``): the share of samples on the lines of
``ClientConnection.on_headers_complete`` that handle those headers and in ``trace_id``, times that
variant's event-loop CPU us/request.

Profile: while portside serves the keep-alive load (and again the close load), py-spy samples the
``portside server`` process (``--nonblocking``: py-spy's default pauses the process per sample,
and a paused thread stops at its next return from the kernel, which piles samples onto
``transport.write`` call sites) and the top self-time functions and lines of its event loop thread are printed with their
share and us/request (share x that thread's median CPU us/request, from /proc). Samples whose
innermost Python frame is ``asyncio/runners.py`` are time in uvloop's C code and the kernel
(epoll, accept, recv, callback dispatch) that Python frames cannot attribute. A second run under
``perf record -e cpu-clock`` (when perf is installed) splits the whole process's CPU by binary
(kernel, CPython interpreter, httptools, uvloop, libc) and lists the top symbols. When the hot path
is compiled, py-spy sees only the Python frames around it; perf sees the compiled code too.

Quiet machine: results are only meaningful when nothing else runs. Before starting, the script
waits (up to ``--wait-quiet`` s) until the 1-minute load average is at most ``--max-load``. Before
every measured run it waits (up to ``IDLE_WAIT_S``) until both cores are nearly idle, and it
sums the CPU time every process that is not one of its own used during the run ("foreign"); a
run with more than ``FOREIGN_MAX_PCT`` % of a core of foreign CPU is repeated (up to
``MAX_ATTEMPTS`` times, then kept and counted as noisy in the tables). ``--no-wait`` skips both
waits (for a quick functional check).

Everything started (backends, proxies, portside server, standalone proxies, wrk, py-spy, perf) runs in
its own process group and is stopped by id on exit, including after Ctrl-C or an error; the temp
directory under /tmp is removed (``--keep-temp`` keeps it).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROXY_CORE = "0"
LOAD_CORE = "1"
CONNECTIONS = 32
BACKENDS = 4
RULES = 10
HEALTH_INTERVAL_S = 2
HEALTH_TIMEOUT_S = 1
HEALTHY_THRESHOLD = 2
WARMUP_S = 1
PACE_DELAY_MS = 10
PACE_CALIBRATIONS = 2  # 2 s trial runs per system to find its connection count
PROFILE_RATE_HZ = 500
PERF_RATE_HZ = 999
FOREIGN_MAX_PCT = 20.0  # a run during which other processes used more than this (% of one core) is repeated
MAX_ATTEMPTS = 3
IDLE_MAX_BUSY_PCT = 20.0  # before a run, both cores must be at most this busy (over IDLE_WINDOW_S)
IDLE_WINDOW_S = 0.5
IDLE_WAIT_S = 60.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PORT_RANGE = (20000, 32000)  # below the ephemeral range, so wrk's own sockets never collide
CLK_TCK = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("direct", "haproxy", "nginx", "portside")
VARIANTS = (
    "base",
    "rules10",
    "rules50",
    "no-retries",
    "least-outst.",
    "sticky-new",
    "sticky-cookie",
    "slow-start",
    "pure-python",
)
TG_ARN = "arn:bench:targetgroup/bench"
PURE_PYTHON_ENV = "PORTSIDE_PURE_PYTHON"


class BenchError(Exception):
    pass


def compiled_data_plane() -> tuple[bool, str | None]:
    """Whether this install's proxy hot path is compiled (the server and variants import the same files)."""
    import portside.proxy

    return portside.proxy.COMPILED, portside.proxy.FALLBACK_REASON


# --------------------------------------------------------------------------- the standalone proxy


def variant_spec(name: str, port: int, backend_ports: list[int]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "port": port,
        "backends": backend_ports,
        "rules": 0,
        "retries": True,
        "algorithm": "round_robin",
        "sticky": False,
        "slow_start_s": 0,
    }
    if name == "rules10":
        spec["rules"] = 10
    elif name == "rules50":
        spec["rules"] = 50
    elif name == "no-retries":
        spec["retries"] = False
    elif name == "least-outst.":
        spec["algorithm"] = "least_outstanding_requests"
    elif name in ("sticky-new", "sticky-cookie"):
        spec["sticky"] = True
    elif name == "slow-start":
        spec["slow_start_s"] = 900
    return spec


def serve_proxy(spec: dict[str, Any]) -> None:
    """Child mode: one ``ProxyRuntime`` with an ``LbConfig`` built here; prints one JSON line when ready."""
    import asyncio

    import uvloop

    import portside.proxy
    from portside.core.lb.model import (
        DEFAULT_RULE_PRIORITY,
        Action,
        Condition,
        HealthCheck,
        LbConfig,
        Listener,
        Rule,
        Target,
        TargetGroup,
        TargetGroupAttributes,
        WeightedTargetGroup,
    )
    from portside.proxy.runtime import ProxyRuntime

    async def main() -> None:
        loop = asyncio.get_running_loop()
        runtime = ProxyRuntime(retries=spec["retries"])
        check = HealthCheck(
            interval_s=HEALTH_INTERVAL_S, timeout_s=HEALTH_TIMEOUT_S, healthy_threshold=HEALTHY_THRESHOLD
        )
        attrs = TargetGroupAttributes(
            algorithm=spec["algorithm"],
            stickiness_enabled=spec["sticky"],
            slow_start_s=spec["slow_start_s"],
        )
        targets = tuple(Target("127.0.0.1", p, "127.0.0.1") for p in spec["backends"])
        group = TargetGroup(TG_ARN, "bench", "HTTP", 80, "ip", check, attrs, targets)
        rules = [
            Rule(
                f"arn:bench:rule/{i}",
                i + 1,
                (Condition("path-pattern", (f"/svc{i}/*",)),),
                (
                    Action(
                        "fixed-response", fixed_status=200, fixed_content_type="text/plain", fixed_body="x"
                    ),
                ),
            )
            for i in range(spec["rules"])
        ]
        rules.append(
            Rule(
                "arn:bench:rule/default",
                DEFAULT_RULE_PRIORITY,
                (),
                (Action("forward", target_groups=(WeightedTargetGroup(TG_ARN),)),),
                is_default=True,
            )
        )
        listener = Listener(
            "arn:bench:listener/bench", "arn:bench:lb/bench", "HTTP", spec["port"], "127.0.0.1", tuple(rules)
        )
        runtime.bind_listener(listener)
        runtime.apply(LbConfig((listener,), {TG_ARN: group}))
        live = runtime.groups[TG_ARN]
        deadline = loop.time() + START_TIMEOUT_S
        while len(live.eligible) < len(targets) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        now = loop.time()
        print(
            json.dumps(
                {
                    "eligible": len(live.eligible),
                    "in_slow_start": sum(1 for t in live.eligible if t.slow_start_until > now),
                    "compiled": portside.proxy.COMPILED,
                }
            ),
            flush=True,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runtime.close()

    uvloop.install()
    asyncio.run(main())


# --------------------------------------------------------------------------- processes


class Proc:
    """A child in its own process group, stopped by its own id (and its group's) on exit."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        stdout_pipe: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if stdout_pipe else self.log,
            stderr=self.log,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise BenchError(f"{self.name} printed nothing within {timeout:g} s:\n{self.log_tail()}")
        line = self.proc.stdout.readline().decode()
        if not line:
            self.proc.wait(5)
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
        return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, self.stop_signal)
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc.pid)
                self.proc.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                pass
        _kill_group(self.proc.pid)  # anything the child left behind in its own group (nginx workers)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime, stime) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), int(fields[11]), int(fields[12]))
    return table


def tree_pids(root: int, table: dict[int, tuple[int, int, int]] | None = None) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in (table if table is not None else process_table()).items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def foreign_ticks() -> dict[int, int]:
    """CPU ticks of every user-space process that is not this script or one of its descendants."""
    table = process_table()
    ours = set(tree_pids(os.getpid(), table))
    return {pid: u + s for pid, (ppid, u, s) in table.items() if pid not in ours and ppid != 2 and pid != 2}


def cpu_split(pids: Iterable[int | str]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes (or ``pid/task/tid`` threads)."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def core_times() -> dict[str, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            nums = [int(v) for v in vals]
            idle = nums[3] + nums[4]
            out[name[3:]] = (sum(nums[:8]) - idle, sum(nums[:8]))
    return out


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(*PORT_RANGE)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def http_get(
    port: int, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 2.0
) -> tuple[int, dict[str, list[str]], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            hdrs: dict[str, list[str]] = {}
            for k, v in resp.headers.items():
                hdrs.setdefault(k.lower(), []).append(v)
            return resp.status, hdrs, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {}, err.read()


def wait_until(
    what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT_S, procs: Iterable[Proc] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check_alive()
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- configs


def backend_conf(tmp: Path, ports: list[int]) -> str:
    listens = " ".join(f"listen 127.0.0.1:{p};" for p in ports)
    return f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/backends.pid;
error_log {tmp}/backends.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/b_body; proxy_temp_path {tmp}/b_proxy; fastcgi_temp_path {tmp}/b_fcgi;
  uwsgi_temp_path {tmp}/b_uwsgi; scgi_temp_path {tmp}/b_scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {{
    {listens}
    location = /port {{ return 200 "$server_port\\n"; }}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def haproxy_conf(port: int, backends: list[int]) -> str:
    rules = "\n".join(
        f'  http-request return status 200 content-type text/plain string "x" if {{ path_beg /svc{i}/ }}'
        for i in range(RULES)
    )
    servers = "\n".join(
        f"  server t{i} 127.0.0.1:{p} check inter {HEALTH_INTERVAL_S}s fall 2 rise {HEALTHY_THRESHOLD}"
        for i, p in enumerate(backends)
    )
    return f"""
global
  maxconn 4000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  timeout check {HEALTH_TIMEOUT_S}s
  option http-keep-alive
frontend lb
  bind 127.0.0.1:{port}
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Amzn-Trace-Id Root=%[uuid]
{rules}
  default_backend targets
backend targets
  balance roundrobin
  http-reuse always
  option httpchk GET /
{servers}
"""


def nginx_proxy_conf(tmp: Path, port: int, backends: list[int]) -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in backends)
    rules = "\n".join(f'    location /svc{i}/ {{ return 200 "x"; }}' for i in range(RULES))
    return f"""
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx-proxy.pid;
error_log {tmp}/nginx-proxy.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/p_body; proxy_temp_path {tmp}/p_proxy; fastcgi_temp_path {tmp}/p_fcgi;
  uwsgi_temp_path {tmp}/p_uwsgi; scgi_temp_path {tmp}/p_scgi;
  keepalive_requests 1000000;
  upstream targets {{
{servers}
    keepalive 64;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port};
{rules}
    location / {{
      proxy_pass http://targets;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Amzn-Trace-Id "Root=1-$request_id";
    }}
  }}
}}
"""


PACE_LUA = """
local d = tonumber(os.getenv("WRK_DELAY_MS") or "10")
function delay() return d end
"""


# --------------------------------------------------------------------------- wrk


@dataclass
class Sample:
    rps: float
    p50_us: float
    p99_us: float
    requests: int
    errors: int
    non2xx: int
    cpu_us_per_req: float | None = None
    loop_cpu_us_per_req: float | None = None  # the proxy's main thread (portside: the event loop) only
    sys_share: float | None = None  # kernel share of the proxy's CPU time
    foreign_pct: float = 0.0  # CPU other processes on this machine used during the run, % of one core
    attempts: int = 1
    cpu_pct: float | None = None
    core0_pct: float = 0.0
    core1_pct: float = 0.0


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def parse_wrk(out: str) -> Sample:
    lat = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
        for m in re.finditer(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    }
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    reqs = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if not (rps and reqs and "50" in lat and "99" in lat):
        raise BenchError(f"cannot parse wrk output:\n{out}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Sample(
        rps=float(rps.group(1)),
        p50_us=lat["50"],
        p99_us=lat["99"],
        requests=int(reqs.group(1)),
        errors=sum(int(x) for x in sock.groups()) if sock else 0,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
    )


class Wrk:
    def __init__(self, tmp: Path, procs: list[Proc]) -> None:
        self.tmp = tmp
        self.procs = procs  # every running child: one that died fails the run
        self.script = tmp / "pace.lua"
        self.script.write_text(PACE_LUA)

    def run(
        self,
        port: int,
        duration: float,
        connections: int = CONNECTIONS,
        close: bool = False,
        cpu_root: int | None = None,
        headers: Iterable[str] = (),
        pace_ms: int | None = None,
        path: str = "/",
    ) -> Sample:
        argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
        if close:
            argv += ["-H", "Connection: close"]
        for h in headers:
            argv += ["-H", h]
        env = dict(os.environ)
        if pace_ms is not None:
            argv += ["-s", str(self.script)]
            env["WRK_DELAY_MS"] = str(pace_ms)
        argv.append(f"http://127.0.0.1:{port}{path}")
        pids = tree_pids(cpu_root) if cpu_root is not None else []
        main_stat = [f"{cpu_root}/task/{cpu_root}"] if cpu_root is not None else []
        foreign0 = foreign_ticks()
        cpu0, loop0, cores0, t0 = cpu_split(pids), cpu_split(main_stat), core_times(), time.monotonic()
        out_path = self.tmp / "wrk.out"
        with open(out_path, "wb") as out_file:
            proc = subprocess.Popen(
                argv, stdout=out_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            proc.wait(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish: {' '.join(argv)}") from None
        finally:
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.wait()
        wall, cores1, cpu1, loop1 = time.monotonic() - t0, core_times(), cpu_split(pids), cpu_split(main_stat)
        foreign1 = foreign_ticks()
        text = out_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"wrk failed ({proc.returncode}): {' '.join(argv)}\n{text}")
        for p in self.procs:
            p.check_alive()
        sample = parse_wrk(text)
        sample.foreign_pct = (
            sum(t - foreign0.get(pid, 0) for pid, t in foreign1.items()) / CLK_TCK / wall * 100
        )
        if cpu_root is not None and sample.requests:
            used = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
            sample.cpu_us_per_req = used * 1e6 / sample.requests
            sample.cpu_pct = used / wall * 100
            sample.sys_share = (cpu1[1] - cpu0[1]) / used if used else None
            sample.loop_cpu_us_per_req = (
                ((loop1[0] - loop0[0]) + (loop1[1] - loop0[1])) * 1e6 / sample.requests
            )
        for core, attr in ((PROXY_CORE, "core0_pct"), (LOAD_CORE, "core1_pct")):
            busy = cores1[core][0] - cores0[core][0]
            total = cores1[core][1] - cores0[core][1]
            setattr(sample, attr, 100.0 * busy / total if total else 0.0)
        return sample


# --------------------------------------------------------------------------- the systems


@dataclass
class System:
    name: str
    port: int
    cpu_root: int | None  # the process whose tree's CPU time is the proxy's


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.wrk = Wrk(tmp, self.procs)
        self.systems: dict[str, System] = {}
        self.variants: dict[str, System] = {}
        self.sticky_cookie = ""
        self.portside_proc: Proc | None = None
        self.backend_ports: list[int] = []

    def spawn(self, name: str, argv: list[str], **kw: Any) -> Proc:
        proc = Proc(name, argv, self.tmp / f"{name}.log", **kw)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except (OSError, subprocess.SubprocessError) as exc:  # keep stopping the rest
                print(f"warning: stopping {proc.name}: {exc}", file=sys.stderr)
        self.procs.clear()

    # -- starting

    def start(self) -> None:
        ports = free_ports(BACKENDS + 3 + len(VARIANTS) + 1)
        self.backend_ports = ports[:BACKENDS]
        hap_port, ngx_port, ps_port, api_port = ports[BACKENDS : BACKENDS + 4]
        variant_ports = ports[BACKENDS + 4 :]

        conf = self.tmp / "backends.conf"
        conf.write_text(backend_conf(self.tmp, self.backend_ports))
        self.spawn(
            "backends",
            ["taskset", "-c", LOAD_CORE, "nginx", "-e", str(self.tmp / "backends.err"), "-c", str(conf)],
        )
        backends_proc = self.procs[-1]
        for p in self.backend_ports:
            wait_until(f"backend {p}", lambda p=p: http_get(p)[0] == 200, procs=[backends_proc])
        self.systems["direct"] = System("direct", self.backend_ports[0], None)

        conf = self.tmp / "haproxy.cfg"
        conf.write_text(haproxy_conf(hap_port, self.backend_ports))
        check = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise BenchError(f"haproxy config rejected:\n{check.stdout}{check.stderr}")
        hap = self.spawn("haproxy", ["taskset", "-c", PROXY_CORE, "haproxy", "-db", "-f", str(conf)])
        self.systems["haproxy"] = System("haproxy", hap_port, hap.pid)

        conf = self.tmp / "nginx-proxy.conf"
        conf.write_text(nginx_proxy_conf(self.tmp, ngx_port, self.backend_ports))
        ngx = self.spawn(
            "nginx-proxy",
            ["taskset", "-c", PROXY_CORE, "nginx", "-e", str(self.tmp / "nginx-proxy.err"), "-c", str(conf)],
        )
        self.systems["nginx"] = System("nginx", ngx_port, ngx.pid)

        self.start_portside(api_port, ps_port)
        if not self.args.skip_features:
            self.start_variants(variant_ports)

        for system in list(self.systems.values()) + list(self.variants.values()):
            self.sanity(system)

    def start_portside(self, api_port: int, listener_port: int) -> None:
        import boto3
        from botocore.config import Config

        state = self.tmp / "portside-state"
        state.mkdir()
        proc = self.spawn(
            "portside",
            [
                "taskset",
                "-c",
                PROXY_CORE,
                sys.executable,
                "-m",
                "portside.cli.main",
                "server",
                "--api",
                f"127.0.0.1:{api_port}",
                "--state-dir",
                str(state),
                "--min-health-check-interval",
                "1",
                "--log-level",
                "warning",
                "--firewall",
                self.args.firewall,
            ],
        )
        self.portside_proc = proc
        endpoint = f"http://127.0.0.1:{api_port}"

        def answers() -> bool:
            with urllib.request.urlopen(endpoint + "/healthz", timeout=1):
                return True

        wait_until("portside server API", answers, procs=[proc])
        elb = boto3.client(
            "elbv2",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            # parameter_validation off: botocore's model floors the interval at 5 s; the server allows 1.
            config=Config(parameter_validation=False, retries={"max_attempts": 1}, read_timeout=30),
        )
        lb = elb.create_load_balancer(Name="lb-bench", Scheme="internal", Type="application")[
            "LoadBalancers"
        ][0]
        tg = elb.create_target_group(
            Name="lb-bench",
            Protocol="HTTP",
            Port=80,
            TargetType="ip",
            VpcId="vpc-bench",
            HealthCheckPath="/",
            HealthCheckIntervalSeconds=HEALTH_INTERVAL_S,
            HealthCheckTimeoutSeconds=HEALTH_TIMEOUT_S,
            HealthyThresholdCount=HEALTHY_THRESHOLD,
            UnhealthyThresholdCount=2,
        )["TargetGroups"][0]
        tg_arn = tg["TargetGroupArn"]
        elb.register_targets(
            TargetGroupArn=tg_arn, Targets=[{"Id": "127.0.0.1", "Port": p} for p in self.backend_ports]
        )
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )["Listeners"][0]
        for i in range(RULES):
            elb.create_rule(
                ListenerArn=listener["ListenerArn"],
                Priority=i + 1,
                Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/svc{i}/*"]}}],
                Actions=[
                    {
                        "Type": "fixed-response",
                        "FixedResponseConfig": {
                            "StatusCode": "200",
                            "ContentType": "text/plain",
                            "MessageBody": "x",
                        },
                    }
                ],
            )

        def all_healthy() -> bool:
            states = [
                d["TargetHealth"]["State"]
                for d in elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
            ]
            return len(states) == BACKENDS and all(s == "healthy" for s in states)

        wait_until("portside targets healthy", all_healthy, procs=[proc])
        self.systems["portside"] = System("portside", listener_port, proc.pid)

    def start_variants(self, ports: list[int]) -> None:
        started = []
        for name, port in zip(VARIANTS, ports):
            spec = variant_spec(name, port, self.backend_ports)
            pure = ["env", f"{PURE_PYTHON_ENV}=1"] if name == "pure-python" else []
            proc = self.spawn(
                f"variant-{name}",
                [
                    "taskset",
                    "-c",
                    PROXY_CORE,
                    *pure,
                    sys.executable,
                    os.path.abspath(__file__),
                    "--serve-proxy",
                    json.dumps(spec),
                ],
                stdout_pipe=True,
            )
            started.append((name, port, proc))
        for name, port, proc in started:
            ready = json.loads(proc.read_line(START_TIMEOUT_S))
            if ready["eligible"] != BACKENDS:
                raise BenchError(f"variant {name}: only {ready['eligible']} targets became healthy")
            if name == "slow-start" and ready["in_slow_start"] == 0:
                raise BenchError("variant slow-start: no target is in its slow start ramp")
            if ready["compiled"] != (name != "pure-python" and compiled_data_plane()[0]):
                raise BenchError(f"variant {name}: compiled={ready['compiled']}, not what this install has")
            self.variants[name] = System(name, port, proc.pid)
        # A valid stickiness cookie for sticky-cookie; check that it pins one backend.
        port = self.variants["sticky-cookie"].port
        _, headers, _ = http_get(port)
        cookies = [c.split(";", 1)[0] for c in headers.get("set-cookie", []) if c.startswith("AWSALB=")]
        if not cookies:
            raise BenchError(f"sticky variant set no AWSALB cookie: {headers}")
        self.sticky_cookie = cookies[0]
        seen = {http_get(port, "/port", {"Cookie": self.sticky_cookie})[2] for _ in range(8)}
        if len(seen) != 1:
            raise BenchError(f"the AWSALB cookie did not pin one backend: {seen}")

    def sanity(self, system: System) -> None:
        """``/`` reaches the backends (all four, through a proxy) and ``/svc3/x`` is answered by a rule."""

        def all_backends() -> bool:
            seen = {http_get(system.port, "/port")[2] for _ in range(4 * BACKENDS)}
            return len(seen) == BACKENDS or system.name in (
                "direct",
                "slow-start",
                "sticky-new",
                "sticky-cookie",
            )

        wait_until(
            f"{system.name} answering",
            lambda: http_get(system.port)[:3:2] == (200, b"ok\n"),
            procs=self.procs,
        )
        if system.name != "direct":
            wait_until(f"{system.name} balancing over all backends", all_backends, procs=self.procs)
        rules_expected = system.name in ("haproxy", "nginx", "portside", "rules10", "rules50")
        if rules_expected:
            status, _, body = http_get(system.port, "/svc3/x")
            if (status, body) != (200, b"x"):
                raise BenchError(
                    f"{system.name}: /svc3/x answered {status} {body!r}, not the rule's fixed response"
                )

    # -- measuring

    def measure(
        self,
        system: System,
        close: bool = False,
        duration: float | None = None,
        clean: bool = True,
        **kw: Any,
    ) -> Sample:
        """One wrk run; with ``clean``, waits for idle cores first and repeats a run other processes disturbed."""
        headers = [f"Cookie: {self.sticky_cookie}"] if system.name == "sticky-cookie" else []
        attempts = MAX_ATTEMPTS if clean else 1
        for attempt in range(1, attempts + 1):
            if clean:
                wait_for_idle_cores(self.args.no_wait)
            sample = self.wrk.run(
                system.port,
                duration or self.args.duration,
                close=close,
                cpu_root=system.cpu_root,
                headers=headers,
                **kw,
            )
            sample.attempts = attempt
            if not clean or sample.foreign_pct <= FOREIGN_MAX_PCT:
                break
            print(
                f"  {system.name}: other processes used {sample.foreign_pct:.0f}% of a core during the run"
                + ("; repeating it" if attempt < attempts else "; kept (marked noisy)"),
                flush=True,
            )
        return sample

    def warm_up(self, systems: Iterable[System], close: bool = False) -> None:
        for system in systems:
            self.measure(system, close=close, duration=WARMUP_S, clean=False)

    def profile(self, system: System, duration: float, close: bool = False) -> tuple[Counter[str], Sample]:
        """py-spy raw stacks of ``system`` while wrk loads it (keep-alive).

        ``--nonblocking``: py-spy's default pauses the process for every sample, and a paused thread
        stops at its next return from the kernel, which piles the samples onto syscall sites
        (``transport.write`` got ~60 % that way against ~28 % without pausing).
        """
        out = self.tmp / f"profile-{system.name}{'-close' if close else ''}.txt"
        assert system.cpu_root is not None
        spy = self.spawn(
            f"py-spy-{system.name}",
            [
                "taskset",
                "-c",
                LOAD_CORE,
                "py-spy",
                "record",
                "--nonblocking",
                "-r",
                str(PROFILE_RATE_HZ),
                "-d",
                f"{duration + 2:g}",
                "-f",
                "raw",
                "-o",
                str(out),
                "-p",
                str(system.cpu_root),
            ],
        )
        time.sleep(1.0)  # py-spy attaches
        self.procs.remove(spy)  # its exit is expected
        try:
            sample = self.measure(system, duration=duration, clean=False, close=close)
            spy.proc.wait(duration + 30)
        finally:
            spy.stop()
        stacks: Counter[str] = Counter()
        for line in out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[stack] += int(count)
        if not stacks:
            raise BenchError(f"py-spy recorded nothing:\n{spy.log_tail()}")
        return stacks, sample

    def perf_profile(
        self, system: System, duration: float, close: bool = False
    ) -> list[tuple[float, str, str]]:
        """``perf record -e cpu-clock`` of ``system`` under keep-alive load: (percent, binary, symbol), largest first."""
        data = self.tmp / f"perf-{system.name}{'-close' if close else ''}.data"
        assert system.cpu_root is not None
        rec = self.spawn(
            f"perf-{system.name}",
            [
                "taskset",
                "-c",
                LOAD_CORE,
                "perf",
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                str(PERF_RATE_HZ),
                "-p",
                str(system.cpu_root),
                "-o",
                str(data),
                "--",
                "sleep",
                f"{duration + 1:g}",
            ],
        )
        time.sleep(0.5)
        self.procs.remove(rec)
        try:
            self.measure(system, duration=duration, clean=False, close=close)
            rec.proc.wait(duration + 30)
        finally:
            rec.stop()
        report = subprocess.run(
            [
                "perf",
                "report",
                "-i",
                str(data),
                "--no-children",
                "--sort",
                "dso,sym",
                "--stdio",
                "-g",
                "none",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        rows = []
        for line in report.stdout.splitlines():
            m = re.match(r"^\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*?)\s*$", line)
            if m:
                rows.append((float(m.group(1)), m.group(2), m.group(3)))
        if not rows:
            raise BenchError(f"perf recorded nothing:\n{report.stderr[-2000:]}\n{rec.log_tail()}")
        return rows


# --------------------------------------------------------------------------- profiles


FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse_frame(frame: str) -> tuple[str, str, int]:
    m = FRAME_RE.match(frame.strip())
    if not m:
        return frame.strip(), "", 0
    return m.group("func"), m.group("file"), int(m.group("line") or 0)


def short_file(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def header_lines() -> set[int]:
    """Lines of ``ClientConnection.on_headers_complete`` that handle the forwarded headers and the trace id."""
    import portside.proxy

    # the source file itself: the module imported here may be the compiled one
    source = (Path(portside.proxy.__file__).parent / "client.py").read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    wanted: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "on_headers_complete":
            for lineno in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                text = lines[lineno - 1]
                if re.search(r"forwarded|xff|trace|peer_ip_bytes|MAX_XFF", text, re.IGNORECASE):
                    wanted.add(lineno)
    return wanted


@dataclass
class ProfileSummary:
    total: int  # samples on the event loop (main) thread
    other_threads: int  # samples on other threads (Docker event stream, executor workers)
    self_by_func: list[tuple[str, int]]
    self_by_line: list[tuple[str, int]]
    incl_by_func: list[tuple[str, int]]  # portside's own functions only
    header_samples: int


def is_event_loop(func: str, file: str) -> bool:
    """The innermost Python frame while uvloop's C code (or the kernel under it) runs."""
    return file.endswith("asyncio/runners.py")


def summarize(stacks: Counter[str]) -> ProfileSummary:
    hdr_lines = header_lines()
    self_by: Counter[str] = Counter()
    line_by: Counter[str] = Counter()
    incl_by: Counter[str] = Counter()
    header = total = other = 0
    for stack, count in stacks.items():
        frames = [parse_frame(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f[0].startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[0][1].endswith("threading.py"):
            other += count
            continue
        total += count
        func, file, line = frames[-1]
        if is_event_loop(func, file):
            self_by["(event loop: uvloop C code + kernel: epoll, accept, recv, callback dispatch)"] += count
        else:
            self_by[f"{func} ({short_file(file)})"] += count
            line_by[f"{short_file(file)}:{line} {func}"] += count
        for name in {
            f"{fn} ({short_file(fl)})"
            for fn, fl, _ in frames
            if "portside/proxy/" in fl or "portside/core/" in fl
        }:
            incl_by[name] += count
        in_trace = any(fn == "trace_id" and fl.endswith("proxy/exchange.py") for fn, fl, _ in frames)
        # a C call made from a header line (bytes concatenation, .count) is charged to that line
        leaf_hdr = (
            func.endswith("on_headers_complete") and file.endswith("proxy/client.py") and line in hdr_lines
        )
        if in_trace or leaf_hdr:
            header += count
    return ProfileSummary(
        total, other, self_by.most_common(), line_by.most_common(), incl_by.most_common(), header
    )


# --------------------------------------------------------------------------- reporting


def med(samples: list[Sample], attr: str) -> float | None:
    vals = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(vals) if vals else None


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def signed_us(us: float) -> str:
    return ("+" if us >= 0 else "-") + fmt_us(abs(us))


def fmt(v: float | None, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def noise(samples: list[Sample]) -> str:
    """Max foreign CPU over the kept runs, and how many runs were kept although disturbed."""
    worst = max(s.foreign_pct for s in samples)
    noisy = sum(1 for s in samples if s.foreign_pct > FOREIGN_MAX_PCT)
    return f"{worst:.0f}%" + (f" ({noisy} noisy)" if noisy else "")


def print_table(title: str, results: dict[str, list[Sample]]) -> None:
    hap = med(results["haproxy"], "rps")
    direct = med(results["direct"], "rps")
    hap_p99 = med(results["haproxy"], "p99_us")
    print(f"\n{title}")
    print(
        f"  {'system':<9} {'req/s':>8} {'(min-max)':>15} {'p50':>8} {'p99':>8} {'xHAProxy':>8} {'xdirect':>7}"
        f" {'p99/HAP':>7} {'proxyCPU':>8} {'CPU us/req':>10} {'kernel':>6} {'core0':>5} {'core1':>5} {'errors':>6}"
        f"  foreign"
    )
    for name in SYSTEMS:
        samples = results[name]
        rps = med(samples, "rps")
        p99 = med(samples, "p99_us")
        spread = f"{min(s.rps for s in samples):,.0f}-{max(s.rps for s in samples):,.0f}"
        errors = sum(s.errors + s.non2xx for s in samples)
        kernel = med(samples, "sys_share")
        print(
            f"  {name:<9} {rps:>8,.0f} {spread:>15} {fmt_us(med(samples, 'p50_us')):>8} {fmt_us(p99):>8}"
            f" {rps / hap:>7.2f}x {rps / direct:>6.2f}x {p99 / hap_p99:>6.2f}x"
            f" {fmt(med(samples, 'cpu_pct'), '.0f', '%'):>8} {fmt(med(samples, 'cpu_us_per_req'), '.1f'):>10}"
            f" {fmt(None if kernel is None else kernel * 100, '.0f', '%'):>6}"
            f" {med(samples, 'core0_pct'):>4.0f}% {med(samples, 'core1_pct'):>4.0f}% {errors:>6}  {noise(samples)}"
        )


def wait_for_idle_cores(skip: bool) -> None:
    """Wait (up to IDLE_WAIT_S) until neither core is busier than IDLE_MAX_BUSY_PCT over a short window."""
    deadline = time.monotonic() + IDLE_WAIT_S
    told = False
    while True:
        before = core_times()
        time.sleep(IDLE_WINDOW_S)
        after = core_times()
        busy = {
            c: 100.0 * (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1])
            for c in (PROXY_CORE, LOAD_CORE)
        }
        if skip or max(busy.values()) <= IDLE_MAX_BUSY_PCT:
            return
        if time.monotonic() > deadline:
            print(f"  cores still busy ({busy}) after {IDLE_WAIT_S:g} s: measuring anyway", flush=True)
            return
        if not told:
            print(
                "  waiting for idle cores (busy: "
                + ", ".join(f"core{c} {b:.0f}%" for c, b in busy.items())
                + ")",
                flush=True,
            )
            told = True
        time.sleep(2.0)


def wait_for_quiet(max_load: float, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        if load1 <= max_load:
            print(f"load average (1 min) {load1:.2f} <= {max_load:g}: starting", flush=True)
            return
        if time.monotonic() >= deadline:
            print(
                f"WARNING: load average (1 min) still {load1:.2f} after {wait_s:g} s; results will be noisy",
                flush=True,
            )
            return
        print(f"load average (1 min) {load1:.2f} > {max_load:g}: waiting", flush=True)
        time.sleep(15)


def run(args: argparse.Namespace) -> int:
    for tool in ("wrk", "haproxy", "nginx", "taskset"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed")
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        raise BenchError("needs at least 2 cores (proxy on core 0, wrk + backends on core 1)")
    if not args.no_wait:
        wait_for_quiet(args.max_load, args.wait_quiet)
    tmp = Path(tempfile.mkdtemp(prefix="portside-lb-bench-", dir="/tmp"))
    bench = Bench(args, tmp)
    t_start = time.monotonic()
    try:
        bench.start()
        compiled, reason = compiled_data_plane()
        print(f"portside server --firewall {args.firewall}; proxy hot path: "
              + ("compiled by mypyc" if compiled else f"pure Python ({reason})"), flush=True)
        print(
            f"started: backends {bench.backend_ports}, "
            + ", ".join(
                f"{s.name} :{s.port}" for s in list(bench.systems.values()) + list(bench.variants.values())
            ),
            flush=True,
        )
        systems = [bench.systems[n] for n in SYSTEMS]
        keep: dict[str, list[Sample]] = {n: [] for n in SYSTEMS}
        close: dict[str, list[Sample]] = {n: [] for n in SYSTEMS}
        bench.warm_up(systems)
        bench.warm_up(systems, close=True)
        for r in range(args.runs):
            for mode, results in ((False, keep), (True, close)):
                for system in systems:
                    results[system.name].append(bench.measure(system, close=mode))
            print(
                f"round {r + 1}/{args.runs}: keep-alive "
                + ", ".join(f"{n} {keep[n][-1].rps:,.0f}" for n in SYSTEMS)
                + " | close "
                + ", ".join(f"{n} {close[n][-1].rps:,.0f}" for n in SYSTEMS),
                flush=True,
            )

        # half-rate latency: per system, the number of paced connections that gives the target rate
        paced: dict[str, list[Sample]] = {n: [] for n in SYSTEMS}
        pace_conns: dict[str, int] = {}
        target_rate = med(keep["portside"], "rps") / 2  # type: ignore[operator]
        if not args.skip_paced:
            first_guess = max(1, round(target_rate * PACE_DELAY_MS / 1000))
            for system in systems:
                conns = first_guess
                for _ in range(PACE_CALIBRATIONS):
                    trial = bench.measure(
                        system, duration=2, connections=conns, pace_ms=PACE_DELAY_MS, clean=False
                    )
                    conns = min(4 * first_guess, max(1, round(conns * target_rate / trial.rps)))
                pace_conns[system.name] = conns
            for r in range(args.runs):
                for system in systems:
                    paced[system.name].append(
                        bench.measure(system, connections=pace_conns[system.name], pace_ms=PACE_DELAY_MS)
                    )
            print(f"half-rate rounds done (connections: {pace_conns}, {PACE_DELAY_MS} ms delay)", flush=True)

        # feature variants
        feats: dict[str, list[Sample]] = {n: [] for n in VARIANTS}
        if not args.skip_features:
            variants = [bench.variants[n] for n in VARIANTS]
            bench.warm_up(variants)
            for r in range(args.runs):
                for system in variants:
                    feats[system.name].append(bench.measure(system))
                print(
                    f"feature round {r + 1}/{args.runs}: "
                    + ", ".join(f"{n} {feats[n][-1].rps:,.0f}" for n in VARIANTS),
                    flush=True,
                )

        # profiles: portside under keep-alive and close load, and the standalone base (for the headers)
        profiles: dict[bool, tuple[Counter[str], Sample]] = {}
        perfs: dict[bool, list[tuple[float, str, str]]] = {}
        prof_base = None
        if not args.no_profile and shutil.which("py-spy"):
            for mode in (False, True):
                wait_for_idle_cores(args.no_wait)
                profiles[mode] = bench.profile(bench.systems["portside"], args.duration, close=mode)
                if shutil.which("perf"):
                    wait_for_idle_cores(args.no_wait)
                    try:
                        perfs[mode] = bench.perf_profile(bench.systems["portside"], args.duration, close=mode)
                    except (BenchError, OSError, subprocess.SubprocessError) as exc:
                        print(f"perf profile failed: {exc}", flush=True)
            if not args.skip_features:
                wait_for_idle_cores(args.no_wait)
                # py-spy sees no compiled frames: the pure-Python variant runs the same code as Python
                prof_base = bench.profile(bench.variants["pure-python"], args.duration)
        elapsed = time.monotonic() - t_start
    finally:
        bench.close()
        if args.keep_temp:
            print(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ report
    print("\n" + "=" * 100)
    print(
        f"portside load balancer benchmark: {args.runs} interleaved runs x {args.duration:g} s per system and mode,"
        f" medians; wrk -t1 -c{CONNECTIONS}; proxy on core {PROXY_CORE}, wrk + backends on core {LOAD_CORE};"
        f" {elapsed:.0f} s"
    )
    print(
        "  proxyCPU: the proxy's CPU use during the run (100% = its core is saturated); CPU us/req: its CPU time per"
        " request (whole process tree); kernel: the system-time share of that; core0/core1: how busy each core was"
        f" (core1 near 100% = wrk + backends set the pace); foreign: most CPU other processes used in a kept run"
        f" (% of a core; runs above {FOREIGN_MAX_PCT:g}% are repeated up to {MAX_ATTEMPTS} times)"
    )
    print_table("Keep-alive (wrk reuses its 32 connections)", keep)
    print_table("New client connection per request (wrk -H 'Connection: close')", close)

    ps_k, hap_k = med(keep["portside"], "rps"), med(keep["haproxy"], "rps")
    ps_p99, hap_p99 = med(keep["portside"], "p99_us"), med(keep["haproxy"], "p99_us")
    ps_c, hap_c = med(close["portside"], "rps"), med(close["haproxy"], "rps")
    goals = [
        (
            ps_k / hap_k >= 0.8,
            f"keep-alive requests/s: portside {ps_k:,.0f} = {ps_k / hap_k:.2f}x HAProxy's {hap_k:,.0f} (goal >= 0.8x)",
        ),
        (
            ps_p99 <= 2 * hap_p99,
            f"keep-alive p99: portside {fmt_us(ps_p99)} = {ps_p99 / hap_p99:.2f}x HAProxy's {fmt_us(hap_p99)} (goal <= 2x)",
        ),
        (
            ps_c / hap_c >= 0.6,
            f"new connection per request: portside {ps_c:,.0f} = {ps_c / hap_c:.2f}x HAProxy's {hap_c:,.0f} (goal >= 0.6x)",
        ),
    ]
    print("\nGoals")
    for ok, text in goals:
        print(f"  [{'MET   ' if ok else 'MISSED'}] {text}")

    if not args.skip_paced:
        print(
            f"\np99 added latency at half of portside's maximum rate (target {target_rate:,.0f} req/s): wrk -t1 -cN with a"
            f" {PACE_DELAY_MS} ms Lua delay() after each response, N calibrated per system to reach the target rate"
            " (wrk2 is not in Debian)"
        )
        d99 = med(paced["direct"], "p99_us")
        d50 = med(paced["direct"], "p50_us")
        print(
            f"  {'system':<9} {'conns':>5} {'req/s':>9} {'p50':>9} {'p99':>9} {'added p50':>10} {'added p99':>10}"
            f" {'p99-HAP':>9} {'proxy CPU':>9}  foreign"
        )
        h99 = med(paced["haproxy"], "p99_us")
        for name in SYSTEMS:
            s = paced[name]
            p99, p50 = med(s, "p99_us"), med(s, "p50_us")
            added99 = "-" if name == "direct" else signed_us(p99 - d99)
            added50 = "-" if name == "direct" else signed_us(p50 - d50)
            print(
                f"  {name:<9} {pace_conns[name]:>5} {med(s, 'rps'):>9,.0f} {fmt_us(p50):>9} {fmt_us(p99):>9}"
                f" {added50:>10} {added99:>10} {signed_us(p99 - h99):>9} {fmt(med(s, 'cpu_pct'), '.0f', '%'):>9}"
                f"  {noise(s)}"
            )

    if not args.skip_features:
        base_rps = med(feats["base"], "rps")
        base_cpu = med(feats["base"], "cpu_us_per_req")
        print(
            "\nFeature cost (standalone ProxyRuntime under uvloop on core 0, keep-alive, one process per variant,"
            " interleaved): us/request = (1/rps_variant - 1/rps_base) x 1e6"
        )
        print(
            f"  {'variant':<14} {'req/s':>9} {'p50':>9} {'p99':>9} {'proxy CPU':>9} {'CPU us/req':>10}"
            f" {'cost us/req':>11} {'CPU delta':>9} {'core0':>6} {'core1':>6} {'foreign':>8}  feature"
        )
        labels = {
            "base": "default rule only, round_robin, retries on",
            "rules10": "10 non-matching path rules",
            "rules50": "50 non-matching path rules",
            "no-retries": "retries OFF (cost shown = retries on vs off)",
            "least-outst.": "least_outstanding_requests vs round_robin",
            "sticky-new": "stickiness, no client cookie (cookie minted per request)",
            "sticky-cookie": "stickiness, client sends its AWSALB cookie",
            "slow-start": "slow start 900 s, inside the ramp (3 of 4 targets)",
            "pure-python": f"the hot path as pure Python ({PURE_PYTHON_ENV}=1): what compiling it saves",
        }
        for name in VARIANTS:
            s = feats[name]
            rps = med(s, "rps")
            cpu = med(s, "cpu_us_per_req")
            if name == "base":
                cost = cpu_delta = "-"
            else:
                sign = -1 if name == "no-retries" else 1
                cost = f"{sign * (1 / rps - 1 / base_rps) * 1e6:+.2f}"
                cpu_delta = (
                    f"{sign * (cpu - base_cpu):+.2f}" if cpu is not None and base_cpu is not None else "-"
                )
            print(
                f"  {name:<14} {rps:>9,.0f} {fmt_us(med(s, 'p50_us')):>9} {fmt_us(med(s, 'p99_us')):>9}"
                f" {fmt(med(s, 'cpu_pct'), '.0f', '%'):>9} {fmt(cpu, '.1f'):>10} {cost:>11} {cpu_delta:>9}"
                f" {med(s, 'core0_pct'):>5.0f}% {med(s, 'core1_pct'):>5.0f}% {noise(s):>8}  {labels[name]}"
            )
        print(
            "  forwarded headers (X-Forwarded-For/-Proto/-Port, X-Amzn-Trace-Id): no switch exists;", end=" "
        )
        if prof_base is not None:
            summary = summarize(prof_base[0])
            share = summary.header_samples / max(1, summary.total)
            base_loop = med(feats["pure-python"], "loop_cpu_us_per_req") or 0.0
            print(
                f"py-spy on pure-python: {share * 100:.1f}% of samples on the header lines of on_headers_complete"
                f" and in trace_id -> about {share * base_loop:.2f} us/request of its {base_loop:.1f}"
                " (compiled, the share is smaller)"
            )
        else:
            print("not estimated (profiling skipped)")

    for mode, results, label in ((False, keep, "keep-alive"), (True, close, "new connection per request")):
        if mode in profiles:
            print_profile(
                label, profiles[mode], perfs.get(mode, []), results["portside"], args.top, detailed=not mode
            )
    return 0 if all(ok for ok, _ in goals) else 1


PERF_BINARIES = {
    "[kernel.kallsyms]": "kernel (TCP loopback send/receive, accept, epoll, wakeups)",
    "libpython3.11.so.1.0": "CPython interpreter (the Python code above)",
}


def print_profile(
    label: str,
    profile: tuple[Counter[str], Sample],
    perf_rows: list[tuple[float, str, str]],
    samples: list[Sample],
    top: int,
    detailed: bool,
) -> None:
    summary = summarize(profile[0])
    cpu_req = med(samples, "cpu_us_per_req") or 0.0
    loop_req = med(samples, "loop_cpu_us_per_req") or 0.0
    total = max(1, summary.total)
    print(
        f"\nWhere portside's CPU goes, {label}: py-spy --nonblocking -r {PROFILE_RATE_HZ} on the portside server"
        f" under wrk ({profile[1].rps:,.0f} req/s while sampled; {summary.total} samples of the event loop thread)."
        f" us/req = share x {loop_req:.1f}, the event loop thread's median CPU us/request (whole process"
        f" {cpu_req:.1f}, kernel time {(med(samples, 'sys_share') or 0) * 100:.0f}% of it)"
    )

    def line(count: int, name: str) -> None:
        print(f"    {count / total * 100:5.1f}% {count / total * loop_req:6.2f} us  {name}")

    print(
        "  top self time by function (innermost Python frame; C calls such as transport.write count to the caller):"
    )
    for name, count in summary.self_by_func[:top]:
        line(count, name)
    if detailed:
        print("  top self time by line:")
        for name, count in summary.self_by_line[: top // 2]:
            line(count, name)
    print("  top inclusive time (portside functions):")
    for name, count in summary.incl_by_func[: top // 2]:
        line(count, name)
    print(
        f"  forwarded headers + trace id: {summary.header_samples / total * 100:.1f}%"
        f" = {summary.header_samples / total * loop_req:.2f} us/request"
    )
    if not perf_rows:
        return
    by_binary: Counter[str] = Counter()
    for pct, dso, _ in perf_rows:
        by_binary[dso] += pct
    print(
        f"  perf record -e cpu-clock -F {PERF_RATE_HZ} (whole process) by binary; us/req = share x {cpu_req:.1f}:"
    )
    for dso, pct in by_binary.most_common(6):
        name = PERF_BINARIES.get(dso) or (
            "httptools (llhttp)" if "parser" in dso else "uvloop" if "loop.cpython" in dso else dso
        )
        print(f"    {pct:5.1f}% {pct / 100 * cpu_req:6.2f} us  {name}")
    print("  perf top symbols:")
    for pct, dso, sym in perf_rows[: top // 2]:
        print(f"    {pct:5.1f}% {pct / 100 * cpu_req:6.2f} us  {sym} ({dso})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="interleaved runs per system (median reported; >= 5 for the goal)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument(
        "--max-load", type=float, default=1.5, help="wait until the 1-minute load average is at most this"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=600.0, help="wait at most this long for a quiet machine"
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--skip-features", action="store_true", help="no standalone feature variants")
    parser.add_argument("--firewall", choices=["guard", "managed", "off"], default="managed",
                        help="portside server's --firewall mode (its host rules are in place unless off)")
    parser.add_argument("--skip-paced", action="store_true", help="no half-rate latency runs")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profiles")
    parser.add_argument("--top", type=int, default=20, help="profile lines to print")
    parser.add_argument(
        "--keep-temp", action="store_true", help="keep the temp dir (configs, logs, profiles)"
    )
    parser.add_argument("--serve-proxy", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        serve_proxy(json.loads(args.serve_proxy))
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
