"""A control plane without Docker, in its own process, for benchmarks/hosts.py.

``python benchmarks/_control_plane.py --state-dir DIR --credentials FILE [--profile OUT]``

The same pieces ``portside server`` wires (``portside/server.py``): the SQLite store, the
control plane, the service controller and the API with SigV4 checked against ``--credentials``
for every caller (``--auth always``, as for agents on other hosts), on uvloop, on
127.0.0.1:<free port>. Not started: this host's own agent (it needs Docker), the load balancer's
data plane, the target sweeper, the scaler and the doctor, so the process's CPU time is the
control plane's work for its agents and API callers only.

When listening it prints one line ``{"port": P}`` on stdout; it stops when stdin closes (its
parent exited or closed the pipe) or on SIGTERM/SIGINT; requests still in flight then (agents'
long polls) get ``CLOSE_GRACE_S`` to finish. ``--profile OUT`` writes cProfile
statistics of the whole run to OUT on the way out.

``ControlPlaneProcess`` is the parent's side: it writes nothing but the credentials file
(``write_credentials``, keys ``KEYS``), starts the child, reads its CPU time (utime + stime,
/proc/PID/stat) and stops it.

Not a benchmark itself; hosts.py starts it through ``ControlPlaneProcess``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from portside import open_file_limit
from portside.api import sigv4
from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.control.plane import ControlPlane
from portside.control.controllers.services import ServiceController
from portside.control.store import Store

LISTEN_HOST = "127.0.0.1"
# Requests in flight at the end (long polls) get this long, then are cut.
CLOSE_GRACE_S = 2.0


async def serve(state_dir: Path, credentials_file: Path) -> None:
    config = ServerConfig(
        api_host=LISTEN_HOST, api_port=0, state_dir=state_dir, credentials_file=credentials_file,
        auth_mode="always", extra={"cluster": "default"},
    )
    store = Store(state_dir / "portside.db")
    plane = ControlPlane(config, store)
    services = ServiceController(plane)
    api = ApiServer(plane, sigv4.load_credentials(str(credentials_file)), auth="always")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096) else None)
    try:
        services.start()
        await api.start(LISTEN_HOST, 0)
        assert api._runner is not None
        port = int(api._runner.addresses[0][1])
        plane.api_address = (LISTEN_HOST, port)
        gc.freeze()  # as portside.server does once started
        print(json.dumps({"port": port}), flush=True)
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        try:  # aiohttp lets handlers finish first: long polls would hold it up to 25 s
            await asyncio.wait_for(api.close(), CLOSE_GRACE_S)
        except TimeoutError:
            pass
        await services.close()
        store.close()


# --------------------------------------------------------------------------- the parent's side

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
AGENT_PROFILE = "agents"
CALLER_PROFILE = "bench"
# The only keys the control plane accepts (it checks every signature, as for agents on other hosts).
KEYS = {
    AGENT_PROFILE: ("AKIDBENCHAGENTS", "agents-secret"),
    CALLER_PROFILE: ("AKIDBENCHCALLER", "caller-secret"),
}


class ControlPlaneError(RuntimeError):
    pass


class ControlPlaneProcess:
    """benchmarks/_control_plane.py in a child process; its CPU time read from /proc."""

    def __init__(self, state_dir: Path, credentials: Path, profile: Path | None = None) -> None:
        self.state_dir = state_dir
        self.credentials = credentials
        self.profile = profile
        self.log_path = state_dir / "control-plane.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the child and wait (blocking) for the port it listens on."""
        argv = [sys.executable, str(Path(__file__)), "--state-dir", str(self.state_dir),
                "--credentials", str(self.credentials)]
        if self.profile is not None:
            argv += ["--profile", str(self.profile)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        if not ready:
            raise ControlPlaneError(
                f"the control plane did not start within {START_TIMEOUT_S:g} s:\n{self.log_tail()}"
            )
        try:
            self.port = int(json.loads(self.proc.stdout.readline())["port"])
        except (ValueError, KeyError, TypeError):
            raise ControlPlaneError(
                f"the control plane exited with {self.proc.wait(STOP_TIMEOUT_S)}:\n{self.log_tail()}"
            ) from None

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        """Close its stdin (it stops when stdin closes), wait, kill it if it does not stop."""
        if self.proc is None:
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def write_credentials(path: Path) -> None:
    """An AWS shared-credentials file: a key for the agents and one for this script's API calls."""
    path.write_text("".join(
        f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n"
        for name, (key, secret) in KEYS.items()
    ))
    path.chmod(0o600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--credentials", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile statistics here on exit")
    args = parser.parse_args()
    open_file_limit.raise_to_hard()  # one connection per agent poll and one per heartbeat
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        runner(serve(args.state_dir, args.credentials))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
