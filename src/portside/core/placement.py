"""Task placement: which container instance each of ``count`` tasks goes to (ECS §4).

Theory of operation
-------------------
:func:`place` is pure: instances, a task ask, strategies, constraints and a seeded
``random.Random`` in; a :class:`PlacementResult` out. Tasks are placed one at a time, and a
placed task updates its instance (CPU, memory, static ports, ``runningTasksCount``, group
counts) before the next one is placed. For each task, as ECS does:

1. **Feasible**: agent connected, remaining CPU and memory ≥ the ask, none of the ask's
   static host ports (per protocol) in use. Dynamic ports never count (§4.4).
2. **Constraints** (binding): ``distinctInstance`` (no task of the ask's group there, tasks
   already running included) and every ``memberOf`` expression (:mod:`.cluster_query`).
3. **Strategies** (best effort; the first is primary, later ones break its ties). Each gives
   an instance a key, smallest wins: ``binpack cpu|memory`` → that resource's remaining
   amount; ``spread instanceId`` (or ``host``) → tasks of the group on the instance;
   ``spread attribute:<name>`` → tasks of the group on all instances (eligible or not) with
   the instance's value, instances lacking the attribute forming one bucket; ``random`` →
   draw among the instances still tied (later strategies never matter). No strategy means
   :data:`DEFAULT_STRATEGIES`: spread by ``attribute:ecs.availability-zone`` then by
   ``instanceId`` (fewest tasks of the group in the zone, then on the instance).
4. **Ties**: instances still tied are ordered by the value of each spread attribute (in
   strategy order, missing first), then by ARN. The first wins; under ``random`` the pick is
   ``tied[rng.randrange(len(tied))]`` (exactly one draw per placed task).

:func:`portside.core.placement_reference.place_brute_force` does this literally, scanning
every instance for every task; the tests check both choose the same instances. Here an
instance's eligibility and per-instance keys change only when a task lands on it, and the
shared spread-attribute counts only grow. So eligible instances live in a tree with a
:class:`_Level` per spread attribute and per run of per-instance keys: children by key,
found through a lazy min-heap (stale counts are refreshed when they surface), down to
:class:`_Leaf` lists of ARNs. A placement walks the tree to the best leaves, removes the
instance, updates it, re-checks it and re-inserts it: O(depth · log n), plus the attribute
values tied at a level.

When no instance qualifies, each task left fails with the same :class:`PlacementFailure`,
explained by the **closest** instance: fewest failed checks (agent, CPU, memory, ports, each
constraint); then fewest non-resource failures (a full instance the constraints allow is
closer than one they exclude); then smallest shortfall (Σ missing/asked over failed CPU and
memory, plus clashing/asked ports); then smallest ARN. The reason is its first failed check
in ECS's order ``AGENT``, ``RESOURCE:CPU``, ``RESOURCE:MEMORY``, ``RESOURCE:PORTS``,
``ATTRIBUTE``; an empty cluster gives ``MISSING``.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping, Sequence
from heapq import heappop, heappush, heapreplace
from typing import Any

from portside.core.cluster_query import compile_expression
from portside.core.placement_model import (
    DEFAULT_STRATEGIES,
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

__all__ = ["place", "split_strategies"]

# -- the incremental engine --------------------------------------------------------------------


class _Slot:
    """The engine's mutable copy of an :class:`Instance` (same field names, so it is a view)."""

    __slots__ = ("agent_connected", "agent_version", "arn", "attributes", "cpu", "ec2_instance_id", "memory",
                 "ports_tcp", "ports_udp", "registered_at", "running_tasks_count", "task_groups")  # fmt: skip

    agent_connected: bool
    agent_version: str
    arn: str
    attributes: Mapping[str, str]
    cpu: int
    ec2_instance_id: str
    memory: int
    ports_tcp: set[int]
    ports_udp: set[int]
    registered_at: float
    running_tasks_count: int
    task_groups: dict[str, int]

    def __init__(self, i: Instance) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(i, name))
        self.ports_tcp, self.ports_udp, self.task_groups = (
            set(i.ports_tcp),
            set(i.ports_udp),
            dict(i.task_groups),
        )


Found = tuple[tuple[Any, ...], list["_Leaf"]]  # (strategy keys, tied leaves in tie order)
# A tree level: (child key of a slot, rank of a child key (smallest first), tie order of a child key)
Level = tuple[Callable[[_Slot], Any], Callable[[Any], Any], Callable[[Any], Any]]


class _Leaf:
    __slots__ = ("arns",)

    def __init__(self) -> None:
        self.arns: list[str] = []

    def insert(self, s: _Slot) -> None:
        insort(self.arns, s.arn)

    def remove(self, s: _Slot) -> bool:
        del self.arns[bisect_left(self.arns, s.arn)]
        return not self.arns

    def best(self) -> Found:
        return (), [self]


class _Level:
    """Children by key, found through a lazy min-heap of ``(rank, tie order, key)``.

    Keys with no child left are dropped when they surface; a rank that grew since it was
    queued (a spread-attribute count) is refreshed when it surfaces. Ranks never shrink
    during a call, so the first fresh entry is the minimum.
    """

    __slots__ = ("child_key", "children", "depth", "heap", "levels", "order", "queued", "rank")

    def __init__(self, levels: Sequence[Level], depth: int) -> None:
        self.child_key, self.rank, self.order = levels[depth]
        self.levels, self.depth = levels, depth + 1
        self.children: dict[Any, _Leaf | _Level] = {}
        self.heap: list[tuple[Any, Any, Any]] = []
        self.queued: set[Any] = set()

    def insert(self, s: _Slot) -> None:
        k = self.child_key(s)
        child = self.children.get(k)
        if child is None:
            child = self.children[k] = (
                _Level(self.levels, self.depth) if self.depth < len(self.levels) else _Leaf()
            )
            if k not in self.queued:
                self.queued.add(k)
                heappush(self.heap, (self.rank(k), self.order(k), k))
        child.insert(s)

    def remove(self, s: _Slot) -> bool:
        k = self.child_key(s)
        if self.children[k].remove(s):
            del self.children[k]
        return not self.children

    def best(self) -> Found:
        heap, children = self.heap, self.children
        tied: list[tuple[Any, Any, Any]] = []
        while heap:
            rank, order, k = heap[0]
            if k not in children:
                heappop(heap)
                self.queued.discard(k)
            elif self.rank(k) != rank:
                heapreplace(heap, (self.rank(k), order, k))
            elif tied and rank != tied[0][0]:
                break
            else:
                tied.append(heappop(heap))
        for entry in tied:
            heappush(heap, entry)
        best_keys: tuple[Any, ...] = ()
        leaves: list[_Leaf] = []
        for n, (_, _, k) in enumerate(tied):  # in tie order
            keys, found = children[k].best()
            if n == 0 or keys < best_keys:
                best_keys, leaves = keys, list(found)
            elif keys == best_keys:
                leaves.extend(found)
        return (tied[0][0], *best_keys), leaves


def _key_level(fns: tuple[Callable[[_Slot], Any], ...]) -> Level:
    key = fns[0] if len(fns) == 1 else lambda x: tuple(f(x) for f in fns)
    return key, lambda k: k, lambda k: 0  # the key is its own rank; keys never tie


def _attribute_level(name: str, counts: dict[str | None, int]) -> Level:
    return lambda x: x.attributes.get(name), lambda v: counts.get(v, 0), _tie_order


def _levels(
    ordering: Sequence[PlacementStrategy], group: str, counts: dict[str, dict[str | None, int]]
) -> list[Level]:
    """One level per spread attribute; one per run of consecutive per-instance keys (a tuple)."""
    levels: list[Level] = []
    run: list[Callable[[_Slot], Any]] = []
    for s in [*ordering, None]:
        name = _attribute(s) if s else None
        if s is not None and name is None:
            run.append(_key_fn(s, group))
            continue
        if run:
            levels.append(_key_level(tuple(run)))
            run = []
        if name is not None:
            levels.append(_attribute_level(name, counts[name]))
    return levels


def _tie_order(value: str | None) -> tuple[bool, str]:
    return value is not None, value or ""  # a missing attribute sorts first


def _attribute(s: PlacementStrategy) -> str | None:
    field = s.field or ""
    return field[len("attribute:") :] if s.type == "spread" and field.startswith("attribute:") else None


def _key_fn(s: PlacementStrategy, group: str) -> Callable[[_Slot], int]:
    if s.type == "binpack":
        return (lambda x: x.cpu) if s.field == "cpu" else (lambda x: x.memory)
    return lambda x: x.task_groups.get(group, 0)  # spread instanceId / host


def split_strategies(strategies: Sequence[PlacementStrategy]) -> tuple[tuple[PlacementStrategy, ...], bool]:
    """(the ordering strategies before the first ``random``, whether ``random`` draws)."""
    strategies = tuple(strategies) or DEFAULT_STRATEGIES
    for n, s in enumerate(strategies):
        if s.type == "random":
            return strategies[:n], True
    return strategies, False


def place(
    instances: Sequence[Instance],
    ask: TaskAsk,
    count: int,
    strategies: Sequence[PlacementStrategy | Mapping[str, Any]] | None,
    constraints: Sequence[PlacementConstraint | Mapping[str, Any]] | None,
    rng: random.Random,
) -> PlacementResult:
    """Place ``count`` tasks like ``ask`` (see the module docstring for the rules).

    *Returns* the instance ARN of each placed task, in order, and one failure per task not
    placed. *Raises* InvalidParameterException for bad strategies/constraints or a negative
    count, ValueError for duplicate instance ARNs. Inputs are not modified.
    """
    if not isinstance(count, int) or count < 0:
        raise InvalidParameterException(f"count must be a non-negative integer (got {count!r})")
    ordering, draws = split_strategies(parse_strategies(strategies))
    rules = parse_constraints(constraints)
    slots = [_Slot(i) for i in instances]
    by_arn = {s.arn: s for s in slots}
    if len(by_arn) != len(slots):
        raise ValueError("instance ARNs must be unique")
    group = ask.group
    names = sorted({n for n in map(_attribute, ordering) if n is not None})
    counts: dict[str, dict[str | None, int]] = {n: {} for n in names}
    for s in slots:
        for n in names:
            v = s.attributes.get(n)
            counts[n][v] = counts[n].get(v, 0) + s.task_groups.get(group, 0)
    eligible = _eligibility(ask, rules)
    levels = _levels(ordering, group, counts)
    root: _Leaf | _Level = _Level(levels, 0) if levels else _Leaf()
    size = 0
    for s in slots:
        if eligible(s):
            root.insert(s)
            size += 1
    placements: list[str] = []
    cpu, memory, tcp, udp = ask.cpu, ask.memory, ask.ports_tcp, ask.ports_udp
    while len(placements) < count and size:
        leaves = root.best()[1]
        if draws:
            index = rng.randrange(sum(len(leaf.arns) for leaf in leaves))
            for leaf in leaves:
                if index < len(leaf.arns):
                    break
                index -= len(leaf.arns)
            arn = leaf.arns[index]
        else:
            arn = leaves[0].arns[0]
        s = by_arn[arn]
        root.remove(s)
        size -= 1
        s.cpu -= cpu
        s.memory -= memory
        s.ports_tcp |= tcp
        s.ports_udp |= udp
        s.running_tasks_count += 1
        s.task_groups[group] = s.task_groups.get(group, 0) + 1
        for n in names:
            v = s.attributes.get(n)
            counts[n][v] = counts[n].get(v, 0) + 1
        if eligible(s):
            root.insert(s)
            size += 1
        placements.append(arn)
    failures = []
    if len(placements) < count:
        failures = [closest_failure(slots, ask, rules)] * (count - len(placements))
    return PlacementResult(placements, failures)


def _eligibility(ask: TaskAsk, rules: Sequence[PlacementConstraint]) -> Callable[[_Slot], bool]:
    cpu, memory, tcp, udp, group = ask.cpu, ask.memory, ask.ports_tcp, ask.ports_udp, ask.group
    tests = [compile_expression(c.expression).test for c in rules if c.type == "memberOf" and c.expression]
    distinct = any(c.type == "distinctInstance" for c in rules)

    def eligible(s: _Slot) -> bool:
        if not s.agent_connected or s.cpu < cpu or s.memory < memory:
            return False
        if (tcp and not tcp.isdisjoint(s.ports_tcp)) or (udp and not udp.isdisjoint(s.ports_udp)):
            return False
        if distinct and s.task_groups.get(group, 0) > 0:
            return False
        return all(t(s) for t in tests)

    return eligible
