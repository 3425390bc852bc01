"""Task placement throughput: 100,000 tasks over 5,000 simulated container instances.

Run: ``python benchmarks/placement.py [--tasks N] [--instances N] [--check N] [--repeat N] [--seed S]``

Cluster: ``--instances`` container instances of six EC2 types (m5.large/xlarge/2xlarge,
c5.xlarge, r5.large, t3.medium) in three availability zones of uneven size; each has
already given away a random share of its CPU and memory, holds ECS's reserved ports
(22, 2375, 2376, 51678, 51679), 20% also hold tcp/80 and 5% tcp/8080; 30% already run 1-3
tasks of ``service:web``; 1% have their agent disconnected.

Work: place ``--tasks`` tasks of ``service:web`` (64 CPU units, 256 MiB, dynamic ports)
with binpack(memory), binpack(cpu), spread(attribute:ecs.availability-zone) +
spread(instanceId), and random; each alone and again with the constraint
``memberOf attribute:ecs.instance-type =~ m5.*``. A last row places 5,000 tasks that need
static tcp/8080 (at most one per instance, so it ends in explained RESOURCE:PORTS failures).

Each run is one :func:`portside.core.placement.place` call (setup included), timed with
the garbage collector paused, best of ``--repeat``, single thread. Then the brute-force
reference (``place_brute_force``: every instance, every key, every task) places the first
``--check`` tasks of the same run and the script asserts it chose the same instances; its
own rate is shown as the scan-everything peer. Exit status 1 if a check fails or a rate
is under the goal.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portside.core.placement import place
from portside.core.placement_model import Instance, PlacementResult, TaskAsk
from portside.core.placement_reference import place_brute_force

GOAL_PER_S = 10_000
NOMAD_PUBLISHED = "1,500-3,750"
DEFAULT_TASKS = 100_000
DEFAULT_INSTANCES = 5_000
DEFAULT_CHECK = 2_000
DEFAULT_REPEAT = 3
DEFAULT_SEED = 1
PORTS_ROW_TASKS = 5_000
RESERVED_TCP = (22, 2375, 2376, 51678, 51679)
ZONES = (("us-east-1a", 40), ("us-east-1b", 35), ("us-east-1c", 25))
# type, CPU units, MiB available to tasks, share of the fleet (%)
TYPES = (
    ("m5.large", 2048, 7680, 20),
    ("m5.xlarge", 4096, 15616, 20),
    ("m5.2xlarge", 8192, 31744, 10),
    ("c5.xlarge", 4096, 7424, 20),
    ("r5.large", 2048, 15872, 15),
    ("t3.medium", 2048, 3904, 15),
)
STRATEGIES: dict[str, list[dict[str, str]]] = {
    "binpack(memory)": [{"type": "binpack", "field": "memory"}],
    "binpack(cpu)": [{"type": "binpack", "field": "cpu"}],
    "spread(az)+spread(instanceId)": [
        {"type": "spread", "field": "attribute:ecs.availability-zone"},
        {"type": "spread", "field": "instanceId"},
    ],
    "random": [{"type": "random"}],
}
MEMBER_OF = "attribute:ecs.instance-type =~ m5.*"
WEB = TaskAsk(cpu=64, memory=256, group="service:web")


def build_cluster(n: int, seed: int) -> list[Instance]:
    rng = random.Random(seed)
    zones, zone_weights = zip(*ZONES, strict=True)
    out = []
    for k in range(n):
        itype, cpu, memory, _ = rng.choices(TYPES, weights=[t[3] for t in TYPES])[0]
        ports = set(RESERVED_TCP)
        if rng.random() < 0.20:
            ports.add(80)
        if rng.random() < 0.05:
            ports.add(8080)
        web = rng.randint(1, 3) if rng.random() < 0.30 else 0
        out.append(
            Instance(
                arn=f"arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{rng.getrandbits(128):032x}",
                ec2_instance_id=f"i-{k:017x}",
                cpu=cpu - rng.randrange(0, cpu // 2, 64),
                memory=memory - rng.randrange(0, memory // 2, 128),
                ports_tcp=frozenset(ports),
                attributes={
                    "ecs.availability-zone": rng.choices(zones, weights=zone_weights)[0],
                    "ecs.instance-type": itype,
                    "ecs.os-type": "linux",
                    "ecs.cpu-architecture": "x86_64",
                },
                agent_connected=rng.random() >= 0.01,
                agent_version="1.86.3",
                registered_at=1_700_000_000.0 + k,
                running_tasks_count=web + rng.randint(0, 4),
                task_groups={"service:web": web} if web else {},
            )
        )
    return out


@dataclass
class Row:
    strategy: str
    constraint: str
    tasks: int
    result: PlacementResult
    per_s: float
    brute_per_s: float
    checked: int
    same: bool


def timed_place(
    cluster: Sequence[Instance],
    ask: TaskAsk,
    count: int,
    strategies: Any,
    constraints: Any,
    seed: int,
    repeat: int,
) -> tuple[PlacementResult, float]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = place(cluster, ask, count, strategies, constraints, random.Random(seed))
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    assert result is not None
    return result, best


def measure(
    cluster: list[Instance],
    label: str,
    strategies: Any,
    constraint: str | None,
    ask: TaskAsk,
    tasks: int,
    args: argparse.Namespace,
) -> Row:
    constraints = [{"type": "memberOf", "expression": constraint}] if constraint else None
    result, elapsed = timed_place(cluster, ask, tasks, strategies, constraints, args.seed, args.repeat)
    checked = min(args.check, tasks)
    brute_per_s, same = 0.0, True
    if checked:
        start = time.perf_counter()
        brute = place_brute_force(cluster, ask, checked, strategies, constraints, random.Random(args.seed))
        brute_per_s = checked / (time.perf_counter() - start)
        ours = result.placements[:checked]
        same = brute.placements == ours and brute.failures == result.failures[: checked - len(ours)]
    return Row(label, constraint or "-", tasks, result, tasks / elapsed, brute_per_s, checked, same)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--instances", type=int, default=DEFAULT_INSTANCES)
    parser.add_argument(
        "--check", type=int, default=DEFAULT_CHECK, help="tasks re-placed by brute force (0: skip)"
    )
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    cluster = build_cluster(args.instances, args.seed)
    m5 = sum(1 for i in cluster if i.attributes["ecs.instance-type"].startswith("m5"))
    print(
        f"{args.tasks:,} tasks of {WEB.cpu} CPU / {WEB.memory} MiB over {len(cluster):,} instances "
        f"({m5:,} m5, {sum(not i.agent_connected for i in cluster)} agent-disconnected), seed {args.seed}; "
        f"Python {platform.python_version()} on {os.cpu_count()} cores, single thread, best of {args.repeat}"
    )
    runs: list[tuple[str, Any, str | None, TaskAsk, int]] = [
        (label, strategies, constraint, WEB, args.tasks)
        for constraint in (None, MEMBER_OF)
        for label, strategies in STRATEGIES.items()
    ]
    ports_ask = TaskAsk(cpu=64, memory=256, group="service:edge", ports_tcp=frozenset({8080}))
    runs.append(("binpack(memory) tcp/8080", STRATEGIES["binpack(memory)"], None, ports_ask, PORTS_ROW_TASKS))

    header = (
        f"{'strategy':<31}{'constraint':<38}{'tasks':>8}{'placed':>9}{'failed':>8}"
        f"{'placements/s':>14}{'µs each':>9}{'brute/s':>9}  check"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for label, strategies, constraint, ask, tasks in runs:
        row = measure(cluster, label, strategies, constraint, ask, tasks, args)
        rows.append(row)
        check = f"first {row.checked:,} same" if row.same else f"first {row.checked:,} DIFFER"
        print(
            f"{row.strategy:<31}{row.constraint:<38}{row.tasks:>8,}{len(row.result.placements):>9,}"
            f"{len(row.result.failures):>8,}{row.per_s:>14,.0f}{1e6 / row.per_s:>9.1f}"
            f"{row.brute_per_s:>9,.0f}  {check if row.checked else 'skipped'}",
            flush=True,
        )
    ports_row = rows[-1]
    if ports_row.result.failures:
        print(f"\n{PORTS_ROW_TASKS:,}-task tcp/8080 run ends with: {ports_row.result.failures[0].message}")
    slowest = min(r.per_s for r in rows)
    met = slowest >= GOAL_PER_S
    print(
        f"\ngoal: >= {GOAL_PER_S:,} placements/s single-threaded -> slowest run {slowest:,.0f}/s: "
        f"{'met' if met else 'NOT MET'}"
    )
    print(
        f"context: Nomad's published cluster-wide scheduling rate is {NOMAD_PUBLISHED} placements/s "
        "(a real multi-server cluster that also plans, commits and starts allocations; not like for like)"
    )
    ok = met and all(r.same for r in rows)
    if not all(r.same for r in rows):
        print("FAILED: the engine and the brute-force reference chose different instances", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
