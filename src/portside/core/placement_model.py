"""The terms of task placement: instances, task asks, strategies, constraints and failures (ECS §4).

What :mod:`.placement` (the engine) and :mod:`.placement_reference` (its brute-force check)
share: the value types, the parsing of ``placementStrategy`` / ``placementConstraints`` with
ECS's messages, and :func:`closest_failure`, the explanation given when no instance qualifies
(the rules for "closest" are in :mod:`.placement`'s docstring).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portside.core.cluster_query import compile_expression
from portside.errors import InvalidParameterException

__all__ = [
    "DEFAULT_STRATEGIES", "EVENT_TAIL", "MAX_CONSTRAINTS", "MAX_STRATEGIES", "REASON_TEXT", "Instance",
    "PlacementConstraint", "PlacementFailure", "PlacementResult", "PlacementStrategy", "TaskAsk",
    "closest_failure", "parse_constraints", "parse_strategies",
]  # fmt: skip

MAX_STRATEGIES = 5
MAX_CONSTRAINTS = 10
EVENT_TAIL = "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
REASON_TEXT = {
    "AGENT": 'encountered error "AGENT".',
    "RESOURCE:CPU": "has insufficient CPU units available.",
    "RESOURCE:MEMORY": "has insufficient memory available.",
    "RESOURCE:PORTS": "is already using a port required by your task.",
    "ATTRIBUTE": "is missing an attribute required by your task.",
}


@dataclass(frozen=True, slots=True)
class Instance:
    """A container instance as placement sees it: what *remains* on it and what it runs."""

    arn: str
    ec2_instance_id: str = ""
    cpu: int = 0  # remaining CPU units
    memory: int = 0  # remaining MiB
    ports_tcp: frozenset[int] = frozenset()  # static host ports in use, reserved ones included
    ports_udp: frozenset[int] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    agent_connected: bool = True
    agent_version: str = ""
    registered_at: float = 0.0  # epoch seconds
    running_tasks_count: int = 0
    task_groups: Mapping[str, int] = field(default_factory=dict)  # group -> tasks it runs


@dataclass(frozen=True, slots=True)
class TaskAsk:
    """One task's needs (``memory``: the caller picks memory, else memoryReservation)."""

    cpu: int
    memory: int
    group: str  # service:<name>, family:<family> or a custom group
    ports_tcp: frozenset[int] = frozenset()  # static host ports only (hostPort > 0)
    ports_udp: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PlacementStrategy:
    type: str  # binpack | spread | random
    field: str | None = None  # cpu | memory | instanceId | host | attribute:<name>


@dataclass(frozen=True, slots=True)
class PlacementConstraint:
    type: str  # distinctInstance | memberOf
    expression: str | None = None


DEFAULT_STRATEGIES = (
    PlacementStrategy("spread", "attribute:ecs.availability-zone"),
    PlacementStrategy("spread", "instanceId"),
)


@dataclass(frozen=True, slots=True)
class PlacementFailure:
    """Why a task was not placed: an ECS RunTask ``reason`` and the closest instance."""

    reason: str  # RESOURCE:CPU | RESOURCE:MEMORY | RESOURCE:PORTS | ATTRIBUTE | AGENT | MISSING
    arn: str | None  # the closest container instance; None for an empty cluster
    detail: str  # every check the closest instance failed, with numbers
    group: str

    @property
    def message(self) -> str:
        """The ECS service event; a group other than ``service:<name>`` shows as ``(task-group g)``."""
        service = self.group.removeprefix("service:")
        return (
            self.service_event(service)
            if service != self.group
            else self._event(f"(task-group {self.group})")
        )

    def service_event(self, service_name: str) -> str:
        return self._event(f"(service {service_name})")

    def _event(self, who: str) -> str:
        head = f"{who} was unable to place a task because no container instance met all of its requirements."
        if self.arn is None:
            return f"{head} Reason: No Container Instances were found in your cluster."
        ident = self.arn.rsplit("/", 1)[-1]
        return f"{head} The closest matching (container-instance {ident}) {REASON_TEXT[self.reason]} {EVENT_TAIL}"


@dataclass(slots=True)
class PlacementResult:
    placements: list[str]  # the instance ARN of each placed task, in order
    failures: list[PlacementFailure]  # one per task not placed (all alike: nothing changed)


# -- validation --------------------------------------------------------------------------------


def _specs(
    kind: str, specs: Sequence[Any] | None, limit: int, keys: tuple[str, str]
) -> list[Mapping[str, Any]]:
    specs = specs or ()
    if len(specs) > limit:
        noun = "strategies" if keys[1] == "field" else "constraints"
        raise InvalidParameterException(f"{kind} may hold at most {limit} {noun} (got {len(specs)})")
    out = []
    for k, spec in enumerate(specs):
        if isinstance(spec, (PlacementStrategy, PlacementConstraint)):
            spec = {keys[0]: spec.type, keys[1]: getattr(spec, keys[1])}
        elif not isinstance(spec, Mapping):
            raise InvalidParameterException(f"{kind}[{k}] must be an object with '{keys[0]}'")
        elif unknown := sorted(set(spec) - set(keys)):
            raise InvalidParameterException(f"{kind}[{k}] has unknown field(s) {unknown}: only {list(keys)}")
        out.append(spec)
    return out


def parse_strategies(
    specs: Sequence[PlacementStrategy | Mapping[str, Any]] | None,
) -> tuple[PlacementStrategy, ...]:
    """Validate ``placementStrategy`` (ECS JSON or values). *Raises* InvalidParameterException."""
    out = []
    for k, spec in enumerate(_specs("placementStrategy", specs, MAX_STRATEGIES, ("type", "field"))):
        kind, fld = spec.get("type"), spec.get("field")
        low = fld.lower() if isinstance(fld, str) else None
        where = f"placementStrategy[{k}]"
        if kind == "random" and fld is not None:
            raise InvalidParameterException(f"{where}: the random strategy takes no field (got '{fld}')")
        if kind == "binpack" and low not in ("cpu", "memory"):
            raise InvalidParameterException(
                f"{where}.field '{fld}' is not valid for binpack: use cpu or memory"
            )
        if kind == "spread" and low not in ("instanceid", "host"):
            if not isinstance(fld, str) or not fld.startswith("attribute:") or fld == "attribute:":
                raise InvalidParameterException(
                    f"{where}.field '{fld}' is not valid for spread: use instanceId, host or attribute:<name>"
                )
            low = None
        if kind not in ("binpack", "spread", "random"):
            raise InvalidParameterException(
                f"{where}.type '{kind}' is not valid: use binpack, spread or random"
            )
        out.append(PlacementStrategy(kind, {"instanceid": "instanceId"}.get(low or "", low) or fld))
    return tuple(out)


def parse_constraints(
    specs: Sequence[PlacementConstraint | Mapping[str, Any]] | None,
) -> tuple[PlacementConstraint, ...]:
    """Validate ``placementConstraints``, compiling each expression. *Raises* InvalidParameterException."""
    out = []
    for k, spec in enumerate(_specs("placementConstraints", specs, MAX_CONSTRAINTS, ("type", "expression"))):
        kind, expr = spec.get("type"), spec.get("expression")
        where = f"placementConstraints[{k}]"
        if kind == "distinctInstance" and expr:
            raise InvalidParameterException(f"{where}: distinctInstance takes no expression (got '{expr}')")
        if kind == "memberOf":
            if not expr or not isinstance(expr, str):
                raise InvalidParameterException(
                    f"{where}.expression (a string) is required for type memberOf"
                )
            try:
                compile_expression(expr)
            except InvalidParameterException as exc:
                raise InvalidParameterException(f"{where}.expression: {exc.message}") from exc
        elif kind != "distinctInstance":
            raise InvalidParameterException(
                f"{where}.type '{kind}' is not valid: use distinctInstance or memberOf"
            )
        out.append(PlacementConstraint(kind, expr or None))
    return tuple(out)


# -- the explanation (a full scan, once per call that cannot place everything) ------------------


def closest_failure(
    views: Iterable[Any], ask: TaskAsk, constraints: Sequence[PlacementConstraint]
) -> PlacementFailure:
    """Explain why no instance of ``views`` (their current state; none eligible) takes ``ask``."""
    best: tuple[Any, ...] | None = None
    for v in views:
        failed: list[tuple[str, str]] = []
        shortfall = 0.0
        if not v.agent_connected:
            failed.append(("AGENT", "the container agent is not connected"))
        if v.cpu < ask.cpu:
            failed.append(("RESOURCE:CPU", f"needs {ask.cpu} CPU units, {v.cpu} remain"))
            shortfall += (ask.cpu - v.cpu) / max(ask.cpu, 1)
        if v.memory < ask.memory:
            failed.append(("RESOURCE:MEMORY", f"needs {ask.memory} MiB of memory, {v.memory} MiB remain"))
            shortfall += (ask.memory - v.memory) / max(ask.memory, 1)
        clash = [f"tcp/{p}" for p in sorted(ask.ports_tcp & v.ports_tcp)]
        clash += [f"udp/{p}" for p in sorted(ask.ports_udp & v.ports_udp)]
        if clash:
            failed.append(("RESOURCE:PORTS", f"host port(s) {', '.join(clash)} already in use"))
            shortfall += len(clash) / (len(ask.ports_tcp) + len(ask.ports_udp))
        for c in constraints:
            if c.type == "distinctInstance" and v.task_groups.get(ask.group, 0) > 0:
                failed.append(("ATTRIBUTE", f"distinctInstance: already runs a task of group {ask.group}"))
            elif c.type == "memberOf" and not compile_expression(c.expression or "")(v):
                failed.append(("ATTRIBUTE", f"memberOf '{c.expression}' is false"))
        other = sum(1 for reason, _ in failed if not reason.startswith("RESOURCE:"))
        key = (len(failed), other, shortfall, v.arn, failed)
        if best is None or key[:4] < best[:4]:
            best = key
    if best is None:
        return PlacementFailure("MISSING", None, "the cluster has no container instances", ask.group)
    detail = f"closest instance {best[3]}: " + "; ".join(why for _, why in best[4])
    return PlacementFailure(best[4][0][0] if best[4] else "ATTRIBUTE", best[3], detail, ask.group)
