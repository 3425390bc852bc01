"""A control plane without Docker, in its own process, for benchmarks/hosts.py.

``python benchmarks/_control_plane.py --state-dir DIR --credentials FILE [--profile OUT]``

The same pieces ``portside server`` wires (``portside/server.py``): the SQLite store, the
control plane, the service controller and the API with SigV4 checked against ``--credentials``
for every caller (``--auth always``, as for agents on other hosts), on uvloop, on
127.0.0.1:<free port>. Not started: this host's own agent (it needs Docker), the load balancer's
data plane, the target sweeper, the scaler and the doctor, so the process's CPU time is the
control plane's work for its agents and API callers only.

When listening it prints one line ``{"port": P}`` on stdout; it stops when stdin closes (its
parent exited or closed the pipe) or on SIGTERM/SIGINT. ``--profile OUT`` writes cProfile
statistics of the whole run to OUT on the way out.

Not a benchmark itself; hosts.py starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import signal
import sys
from pathlib import Path

from portside import open_file_limit
from portside.api import sigv4
from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.control.plane import ControlPlane
from portside.control.service_controller import ServiceController
from portside.control.store import Store

LISTEN_HOST = "127.0.0.1"


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
        await api.close()
        await services.close()
        store.close()


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
