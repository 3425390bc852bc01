"""Run inside an OutsideHost: connect to every copy of one portside server as soon as Docker starts it.

Usage: prober.py OWNER HOST_IP CONTROL_IP CONTROL_PORT STOP_FILE MAX_SECONDS MAX_PROBES

A thread follows Docker's events (the Engine's unix socket is reachable from any network
namespace) and, for each container labelled with OWNER that starts, adds its bridge
addresses (port 80) and its published ports on HOST_IP as targets. The main loop opens
a new connection to every target every PROBE_EVERY_S, at most MAX_IN_FLIGHT per target,
each given CONNECT_TIMEOUT_S. A connection that opens to a copy is a breach; the control
(a container outside portside's guard) must open, or the probing proves nothing. The loop
ends at STOP_FILE, MAX_SECONDS or MAX_PROBES and prints one JSON summary line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections import Counter

import docker

PROBE_EVERY_S = 0.01
CONNECT_TIMEOUT_S = 0.25
MAX_IN_FLIGHT = 20
LABEL_OWNER = "com.portside.owner"


def follow(owner: str, host_ip: str, targets: dict[tuple[str, int], str], lock: threading.Lock) -> None:
    api = docker.APIClient(version="auto")
    filters = {"type": "container", "event": "start", "label": f"{LABEL_OWNER}={owner}"}
    for event in api.events(decode=True, filters=filters):
        info = api.inspect_container(event["id"])
        found = [(net["IPAddress"], 80) for net in info["NetworkSettings"]["Networks"].values() if net.get("IPAddress")]
        for bindings in (info["NetworkSettings"].get("Ports") or {}).values():
            found += [(host_ip, int(b["HostPort"])) for b in bindings or [] if b.get("HostIp") in ("0.0.0.0", "")]
        with lock:
            for target in found:
                targets.setdefault(target, info["Name"].lstrip("/"))


async def probe_all(args: list[str]) -> dict[str, object]:
    owner, host_ip, control_ip, control_port, stop_file = args[:5]
    max_seconds, max_probes = float(args[5]), int(args[6])
    control = (control_ip, int(control_port))
    targets: dict[tuple[str, int], str] = {}
    lock = threading.Lock()
    threading.Thread(target=follow, args=(owner, host_ip, targets, lock), daemon=True).start()
    probes: Counter[str] = Counter()
    in_flight: Counter[tuple[str, int]] = Counter()
    breaches: list[str] = []
    control_answers = 0
    began = time.monotonic()

    async def attempt(target: tuple[str, int]) -> None:
        nonlocal control_answers
        in_flight[target] += 1
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            return
        finally:
            in_flight[target] -= 1
        writer.close()
        if target == control:
            control_answers += 1
        else:
            breaches.append(f"{target[0]}:{target[1]} ({targets[target]}) at {time.monotonic() - began:.3f} s")

    pending: set[asyncio.Task[None]] = set()
    while sum(probes.values()) < max_probes and time.monotonic() - began < max_seconds and not os.path.exists(stop_file):
        with lock:
            current = [control, *targets]
        for target in current:
            if in_flight[target] < MAX_IN_FLIGHT:
                probes["control" if target == control else f"{target[0]}:{target[1]}"] += 1
                task = asyncio.ensure_future(attempt(target))
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.sleep(PROBE_EVERY_S)
    if pending:
        await asyncio.wait(pending)
    return {
        "breaches": breaches, "control_answers": control_answers, "probes": dict(probes),
        "seconds": round(time.monotonic() - began, 1), "stopped_by_file": os.path.exists(stop_file),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe_all(sys.argv[1:]))), flush=True)
    os._exit(0)  # the event thread blocks on Docker's stream
