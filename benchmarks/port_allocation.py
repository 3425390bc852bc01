"""Dynamic host port allocation at 90% occupancy: portside's allocator against a naive scan.

Run: ``python benchmarks/port_allocation.py [--ops N] [--seed S]``

Setup: the Linux default ephemeral range 32768-60999 (28,232 ports) with 90% of it held by
random owners (and, as a second layout, as one contiguous block, the shape round robin leaves
behind long-lived tasks). Each operation assigns one TCP port to a new task and releases the
oldest of the last ``CHURN_WINDOW`` tasks, so occupancy stays at 90% and released ports pass
through quarantine. The simulated clock advances ``CLOCK_STEP_S`` per operation.

Peer: ``NaiveAllocator`` applies the same rule (same order, same checks, same probe calls)
by walking the range port by port with dict/set lookups, as the ECS agent's loop does. Both
run in this process on the same layouts; the script checks they made the same choices.

Probes: "none" is an always-true probe (pure allocator cost); "bind" is a real bind of
127.0.0.1:port with SO_REUSEADDR then close (the cost an agent pays per candidate).
The garbage collector is paused during each timed loop, as ``timeit`` does.

Each "speed-up" row is portside's advantage in the same run (>1 = portside better): allocs/s
as portside / naive, latencies as naive / portside.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import socket
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from portside.core.ports import (
    DEFAULT_RESERVED_TCP,
    LINUX_DEFAULT_EPHEMERAL_RANGE,
    PortAllocator,
    PortProbe,
    PortRange,
)
from portside.errors import PortsExhausted

FILL_FRACTION = 0.90
DEFAULT_OPS = 20_000
CHURN_WINDOW = 200  # tasks alive besides the fill; each operation releases the oldest
CLOCK_STEP_S = 0.1  # simulated seconds between two allocations
QUARANTINE_S = 60.0  # so about 600 released ports sit in quarantine at any time
DEFAULT_SEED = 1
LOOPBACK = "127.0.0.1"
PROTOCOL = "tcp"
US_PER_S = 1_000_000


class Allocator(Protocol):
    def hold(self, owner: str, protocol: str, port: int) -> None: ...
    def assign(self, owner: str, protocol: str, count: int, now: float, is_free: PortProbe) -> list[int]: ...
    def release(self, owner: str, now: float) -> object: ...


class NaiveAllocator:
    """The same rule as ``PortAllocator``, as a linear scan over the range with a lookup per port."""

    def __init__(self, port_range: PortRange, reserved_tcp: Sequence[int], quarantine_s: float) -> None:
        self.range = port_range
        self.reserved = {"tcp": frozenset(reserved_tcp), "udp": frozenset[int]()}
        self.quarantine_s = quarantine_s
        self.last_assigned = 0
        self.held: dict[tuple[str, int], str] = {}
        self.owned: dict[str, list[tuple[str, int]]] = {}
        self.quarantine: dict[tuple[str, int], float] = {}

    def hold(self, owner: str, protocol: str, port: int) -> None:
        self.held[(protocol, port)] = owner
        self.owned.setdefault(owner, []).append((protocol, port))

    def release(self, owner: str, now: float) -> list[tuple[str, int]]:
        keys = self.owned.pop(owner, [])
        for key in keys:
            del self.held[key]
            self.quarantine[key] = now
        return keys

    def assign(self, owner: str, protocol: str, count: int, now: float, is_free: PortProbe) -> list[int]:
        start, end = self.range.start, self.range.end
        first = self.last_assigned + 1 if start <= self.last_assigned + 1 <= end else start
        reserved, held, quarantine = self.reserved[protocol], self.held, self.quarantine

        def usable(port: int) -> bool:
            key = (protocol, port)
            if port in reserved or key in held:
                return False
            released_at = quarantine.get(key)
            if released_at is not None and now - released_at < self.quarantine_s:
                return False
            return is_free(protocol, port)

        for run_start in itertools.chain(range(first, end + 1), range(start, first)):
            ports = list(range(run_start, run_start + count))
            if ports[-1] <= end and all(usable(p) for p in ports):
                for port in ports:
                    self.hold(owner, protocol, port)
                self.last_assigned = start - 1 if ports[-1] == end else ports[-1]
                return ports
        raise PortsExhausted("a host port is unavailable")


def always_free(protocol: str, port: int) -> bool:
    return True


def bind_probe(protocol: str, port: int) -> bool:
    """Can ``port`` be bound on loopback right now? (The IO half the core leaves to the shell.)"""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's net.Listen, used by ECS
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Result:
    allocs_per_s: float
    mean_us: float
    p99_us: float
    max_us: float
    choices: list[int]


def run(alloc: Allocator, fill: Sequence[int], probe: PortProbe, ops: int) -> Result:
    for i, port in enumerate(fill):
        alloc.hold(f"fill-{i}", PROTOCOL, port)
    alive: deque[str] = deque()
    latencies: list[float] = []
    choices: list[int] = []
    now = 0.0
    clock = time.perf_counter
    gc.collect()
    gc.disable()  # as timeit does: a collection of the 25k-holding heap would land on one random op
    began = clock()
    for i in range(ops):
        now += CLOCK_STEP_S
        owner = f"task-{i}"
        t0 = clock()
        ports = alloc.assign(owner, PROTOCOL, 1, now, probe)
        alive.append(owner)
        if len(alive) > CHURN_WINDOW:
            alloc.release(alive.popleft(), now)
        latencies.append(clock() - t0)
        choices.append(ports[0])
    elapsed = clock() - began
    gc.enable()
    latencies.sort()
    return Result(
        allocs_per_s=ops / elapsed,
        mean_us=statistics.fmean(latencies) * US_PER_S,
        p99_us=latencies[int(len(latencies) * 0.99)] * US_PER_S,
        max_us=latencies[-1] * US_PER_S,
        choices=choices,
    )


def layouts(port_range: PortRange, seed: int) -> dict[str, list[int]]:
    candidates = [p for p in range(port_range.start, port_range.end + 1) if p not in DEFAULT_RESERVED_TCP]
    n_fill = int(port_range.size * FILL_FRACTION)
    return {
        "random": random.Random(seed).sample(candidates, n_fill),
        "block": candidates[:n_fill],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=DEFAULT_OPS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    port_range = PortRange(*LINUX_DEFAULT_EPHEMERAL_RANGE, "kernel")
    implementations: dict[str, Callable[[], Allocator]] = {
        "portside": lambda: PortAllocator(port_range, quarantine_s=QUARANTINE_S),
        "naive scan": lambda: NaiveAllocator(port_range, DEFAULT_RESERVED_TCP, QUARANTINE_S),
    }
    probes: dict[str, PortProbe] = {"none": always_free, "bind": bind_probe}
    fills = layouts(port_range, args.seed)
    print(
        f"range {port_range} ({port_range.size} ports), {FILL_FRACTION:.0%} held "
        f"({len(fills['random'])} ports), {args.ops} x (assign 1 port + release the oldest of "
        f"{CHURN_WINDOW}), quarantine {QUARANTINE_S:g} s at {CLOCK_STEP_S:g} s/op, seed {args.seed}"
    )
    header = f"{'layout':<8}{'probe':<7}{'implementation':<16}{'allocs/s':>11}{'mean µs':>10}{'p99 µs':>10}{'max µs':>10}"
    print(header)
    print("-" * len(header))
    for (layout, fill), (probe_name, probe) in itertools.product(fills.items(), probes.items()):
        results = {name: run(factory(), fill, probe, args.ops) for name, factory in implementations.items()}
        for name, r in results.items():
            print(
                f"{layout:<8}{probe_name:<7}{name:<16}{r.allocs_per_s:>11,.0f}"
                f"{r.mean_us:>10.1f}{r.p99_us:>10.1f}{r.max_us:>10.1f}"
            )
        ours, peer = results["portside"], results["naive scan"]
        same = "same choices" if ours.choices == peer.choices else "CHOICES DIFFER"
        print(
            f"{'':<15}{'speed-up':<16}{ours.allocs_per_s / peer.allocs_per_s:>10.1f}x"
            f"{peer.mean_us / ours.mean_us:>9.1f}x{peer.p99_us / ours.p99_us:>9.1f}x"
            f"{peer.max_us / ours.max_us:>9.1f}x  ({same})"
        )


if __name__ == "__main__":
    main()
