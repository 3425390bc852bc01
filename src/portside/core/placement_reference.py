"""A brute-force reading of the placement rules, to check :func:`portside.core.placement.place`.

Theory of operation
-------------------
This is the specification in executable form, written to be obviously correct rather than
fast: for every task it looks at every instance, recomputes every key from scratch, and
sorts. It shares with the engine only the input types, the spec parsing, the compiled
``memberOf`` predicates and the failure explanation (which the engine also computes by a
full scan). The state is a list of frozen :class:`Instance` values; placing a task
replaces one of them. Cost: O(count · n log n); the tests and the benchmark use it on
small clusters or the first tasks of a large run.

For each task:

1. ``fits`` = agent connected, enough CPU and memory, no static port in use, no task of the
   group there under ``distinctInstance``, every ``memberOf`` expression true.
2. ``keys`` = one number per strategy before the first ``random``: remaining CPU/memory for
   binpack, tasks of the group on the instance for spread instanceId/host, tasks of the
   group on every instance (eligible or not) with the same attribute value for spread
   attribute (missing is a value of its own).
3. The instances with the smallest ``keys`` are tied; they are ordered by ``tie_order``
   (each spread attribute's value, missing first, then ARN). Without ``random`` the first
   wins; with it, ``tied[rng.randrange(len(tied))]``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from portside.core.cluster_query import compile_expression
from portside.core.placement import split_strategies
from portside.core.placement_model import (
    Instance,
    PlacementConstraint,
    PlacementResult,
    PlacementStrategy,
    TaskAsk,
    closest_failure,
    parse_constraints,
    parse_strategies,
)
from portside.errors import InvalidParameterException

__all__ = ["place_brute_force"]


def _attribute(s: PlacementStrategy) -> str | None:
    field = s.field or ""
    return field[len("attribute:") :] if s.type == "spread" and field.startswith("attribute:") else None


def _keys(i: Instance, ordering: Sequence[PlacementStrategy], group: str, per_value: Any) -> tuple[int, ...]:
    """One key per ordering strategy, smallest preferred."""
    out = []
    for s in ordering:
        name = _attribute(s)
        if name is not None:  # spread attribute: the group's tasks on instances sharing the value
            out.append(per_value[name][i.attributes.get(name)])
        elif s.type == "binpack":
            out.append(i.cpu if s.field == "cpu" else i.memory)
        else:  # spread instanceId / host
            out.append(i.task_groups.get(group, 0))
    return tuple(out)


def _tie_order(i: Instance, spread_names: Sequence[str]) -> tuple[Any, ...]:
    """Spread attribute values (missing first), then ARN."""
    values = [i.attributes.get(name) for name in spread_names]
    return (*((v is not None, v or "") for v in values), i.arn)


def place_brute_force(
    instances: Sequence[Instance],
    ask: TaskAsk,
    count: int,
    strategies: Sequence[PlacementStrategy | Mapping[str, Any]] | None,
    constraints: Sequence[PlacementConstraint | Mapping[str, Any]] | None,
    rng: random.Random,
) -> PlacementResult:
    """Same contract as :func:`portside.core.placement.place`, by exhaustive search."""
    if not isinstance(count, int) or count < 0:
        raise InvalidParameterException(f"count must be a non-negative integer (got {count!r})")
    ordering, draws = split_strategies(parse_strategies(strategies))
    rules = parse_constraints(constraints)
    member_of = [compile_expression(c.expression or "") for c in rules if c.type == "memberOf"]
    distinct = any(c.type == "distinctInstance" for c in rules)
    group = ask.group
    spread_names = [name for name in map(_attribute, ordering) if name is not None]

    def fits(i: Instance) -> bool:
        return (
            i.agent_connected
            and i.cpu >= ask.cpu
            and i.memory >= ask.memory
            and not (ask.ports_tcp & i.ports_tcp)
            and not (ask.ports_udp & i.ports_udp)
            and not (distinct and i.task_groups.get(group, 0) > 0)
            and all(p(i) for p in member_of)
        )

    state = list(instances)
    placements: list[str] = []
    for _ in range(count):
        per_value: dict[str, dict[str | None, int]] = {}
        for name in spread_names:  # tasks of the group per attribute value, over every instance
            per_value[name] = {}
            for i in state:
                v = i.attributes.get(name)
                per_value[name][v] = per_value[name].get(v, 0) + i.task_groups.get(group, 0)
        candidates = [(_keys(i, ordering, group, per_value), i) for i in state if fits(i)]
        if not candidates:
            break
        smallest = min(k for k, _ in candidates)
        tied = sorted((i for k, i in candidates if k == smallest), key=lambda i: _tie_order(i, spread_names))
        chosen = tied[rng.randrange(len(tied))] if draws else tied[0]
        at = next(n for n, i in enumerate(state) if i.arn == chosen.arn)
        state[at] = replace(
            chosen,
            cpu=chosen.cpu - ask.cpu,
            memory=chosen.memory - ask.memory,
            ports_tcp=chosen.ports_tcp | ask.ports_tcp,
            ports_udp=chosen.ports_udp | ask.ports_udp,
            running_tasks_count=chosen.running_tasks_count + 1,
            task_groups={**chosen.task_groups, group: chosen.task_groups.get(group, 0) + 1},
        )
        placements.append(chosen.arn)
    failures = []
    if len(placements) < count:
        failures = [closest_failure(state, ask, rules)] * (count - len(placements))
    return PlacementResult(placements, failures)
