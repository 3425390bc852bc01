"""Target health as ELBv2 reports it: states, reason codes and the transitions between them.

Theory of operation
-------------------
Rule 1: everything that decides a target's health state lives in this file, and the
transitions are data: ``TRANSITIONS[(state, event)]`` says where a state goes on an event
and which consecutive-count threshold must be reached first. A missing key is an illegal
transition and raises (h11 style), so the table is the whole truth and can be printed.

Events are probe results (``pass`` / ``fail``), ``deregister`` (the target starts draining)
and the target group's use by listener rules (``not-in-use`` / ``in-use``). The caller (the
proxy's health checker) owns the clock, the sockets and the schedule; this module only turns
one observation into the next immutable ``TargetHealth``.

ELBv2 rules encoded here (spec alb.md §1.1-1.3):

* a newly registered target is ``initial`` / ``Elb.RegistrationInProgress``; once probing
  has begun and it has not yet decided, ``initial`` / ``Elb.InitialHealthChecking``;
* ONE passing check makes an ``initial`` target healthy ("After your target is registered,
  it must pass one health check to be considered healthy");
* ``UnhealthyThresholdCount`` consecutive failures make a target unhealthy (from ``initial``
  too); from ``unhealthy`` it takes ``HealthyThresholdCount`` consecutive successes;
* the unhealthy reason names the last failure: ``Target.ResponseCodeMismatch`` (status not
  accepted by the matcher), ``Target.Timeout`` (no answer within the timeout) or
  ``Target.FailedHealthChecks`` (connect error, reset, malformed response);
* ``draining`` is entered by deregistration and is terminal here: probe results no longer
  change it (when the delay ends the target is removed; ``not_registered()`` is what
  DescribeTargetHealth then shows);
* a target of a group no listener rule uses is ``unused`` / ``Target.NotInUse`` and is not
  probed; when the group comes into use it starts again at ``initial``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from portside.core.lb.model import HealthCheck

__all__ = [
    "DRAINING",
    "HEALTHY",
    "INITIAL",
    "REASONS",
    "TRANSITIONS",
    "UNHEALTHY",
    "UNUSED",
    "ProbeOutcome",
    "TargetHealth",
    "deregister",
    "matcher_accepts",
    "new_target",
    "not_registered",
    "observe",
    "outcome_for_status",
    "parse_matcher",
    "set_in_use",
]

# States (botocore TargetHealthStateEnum; ALB uses these five for instance/ip targets)
INITIAL = "initial"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
DRAINING = "draining"
UNUSED = "unused"

# Reason codes -> descriptions, exact strings from the ALB guide (spec alb.md §1.1).
REGISTRATION_IN_PROGRESS = "Elb.RegistrationInProgress"
INITIAL_HEALTH_CHECKING = "Elb.InitialHealthChecking"
RESPONSE_CODE_MISMATCH = "Target.ResponseCodeMismatch"
TIMEOUT = "Target.Timeout"
FAILED_HEALTH_CHECKS = "Target.FailedHealthChecks"
DEREGISTRATION_IN_PROGRESS = "Target.DeregistrationInProgress"
NOT_REGISTERED = "Target.NotRegistered"
NOT_IN_USE = "Target.NotInUse"

REASONS: dict[str, str] = {
    REGISTRATION_IN_PROGRESS: "Target registration is in progress",
    INITIAL_HEALTH_CHECKING: "Initial health checks in progress",
    RESPONSE_CODE_MISMATCH: "Health checks failed with these codes: [{code}]",
    TIMEOUT: "Request timed out",
    FAILED_HEALTH_CHECKS: "Health checks failed",
    DEREGISTRATION_IN_PROGRESS: "Target deregistration is in progress",
    NOT_REGISTERED: "Target is not registered to the target group",
    NOT_IN_USE: "Target group is not configured to receive traffic from the load balancer",
}

# Events
PASS = "pass"
FAIL = "fail"
DEREGISTER = "deregister"
GROUP_NOT_IN_USE = "not-in-use"
GROUP_IN_USE = "in-use"

# Thresholds a transition waits for
_ONE = "one"
_HEALTHY_N = "healthy_threshold"
_UNHEALTHY_N = "unhealthy_threshold"


@dataclass(frozen=True)
class _Step:
    to: str
    threshold: str | None = None  # None: immediate


TRANSITIONS: dict[tuple[str, str], _Step] = {
    (INITIAL, PASS): _Step(HEALTHY, _ONE),
    (INITIAL, FAIL): _Step(UNHEALTHY, _UNHEALTHY_N),
    (HEALTHY, PASS): _Step(HEALTHY),
    (HEALTHY, FAIL): _Step(UNHEALTHY, _UNHEALTHY_N),
    (UNHEALTHY, PASS): _Step(HEALTHY, _HEALTHY_N),
    (UNHEALTHY, FAIL): _Step(UNHEALTHY),
    # draining is terminal for probes
    (DRAINING, PASS): _Step(DRAINING),
    (DRAINING, FAIL): _Step(DRAINING),
    (DRAINING, DEREGISTER): _Step(DRAINING),
    (DRAINING, GROUP_NOT_IN_USE): _Step(DRAINING),
    (DRAINING, GROUP_IN_USE): _Step(DRAINING),
    # deregistration from any live state
    (INITIAL, DEREGISTER): _Step(DRAINING),
    (HEALTHY, DEREGISTER): _Step(DRAINING),
    (UNHEALTHY, DEREGISTER): _Step(DRAINING),
    (UNUSED, DEREGISTER): _Step(DRAINING),
    # the group's use by listener rules
    (INITIAL, GROUP_NOT_IN_USE): _Step(UNUSED),
    (HEALTHY, GROUP_NOT_IN_USE): _Step(UNUSED),
    (UNHEALTHY, GROUP_NOT_IN_USE): _Step(UNUSED),
    (UNUSED, GROUP_NOT_IN_USE): _Step(UNUSED),
    (UNUSED, GROUP_IN_USE): _Step(INITIAL),
    (INITIAL, GROUP_IN_USE): _Step(INITIAL),
    (HEALTHY, GROUP_IN_USE): _Step(HEALTHY),
    (UNHEALTHY, GROUP_IN_USE): _Step(UNHEALTHY),
}


@dataclass(frozen=True)
class ProbeOutcome:
    """One health check result. ``kind`` is ``ok`` | ``code_mismatch`` | ``timeout`` | ``failed``."""

    kind: str
    code: int | None = None  # the HTTP status, for code_mismatch (and ok, when known)
    detail: str = ""  # free text for logs (connect error, parse error …)

    @classmethod
    def ok(cls, code: int | None = None) -> ProbeOutcome:
        """Returns: a passing outcome."""
        return cls("ok", code)

    @classmethod
    def mismatch(cls, code: int) -> ProbeOutcome:
        """Returns: a failure because ``code`` is not accepted by the matcher."""
        return cls("code_mismatch", code)

    @classmethod
    def timeout(cls) -> ProbeOutcome:
        """Returns: a failure because no response arrived within the timeout."""
        return cls("timeout")

    @classmethod
    def failed(cls, detail: str = "") -> ProbeOutcome:
        """Returns: a connect or protocol failure (refused, reset, malformed response)."""
        return cls("failed", None, detail)

    @property
    def passed(self) -> bool:
        """Returns: True for a passing check."""
        return self.kind == "ok"


@dataclass(frozen=True)
class TargetHealth:
    """What DescribeTargetHealth shows for a target, plus the counters that drive it."""

    state: str
    reason: str | None = None
    description: str | None = None
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    last_outcome: ProbeOutcome | None = None

    @property
    def routable(self) -> bool:
        """Returns: True when the LB may send new requests here under normal (not fail-open) routing."""
        return self.state == HEALTHY


def _labelled(health: TargetHealth, state: str, reason: str | None, code: int | None = None) -> TargetHealth:
    """``health`` in ``state`` with ``reason`` and its description (none when healthy)."""
    description = None if reason is None else REASONS[reason].format(code=code)
    return replace(health, state=state, reason=reason, description=description)


_BLANK = TargetHealth(INITIAL)


def new_target(in_use: bool = True) -> TargetHealth:
    """Health of a target that was just registered.

    Returns: ``initial`` / Elb.RegistrationInProgress, or ``unused`` / Target.NotInUse when
    no listener rule uses the group.
    """
    if not in_use:
        return _labelled(_BLANK, UNUSED, NOT_IN_USE)
    return _labelled(_BLANK, INITIAL, REGISTRATION_IN_PROGRESS)


def not_registered() -> TargetHealth:
    """Returns: ``unused`` / Target.NotRegistered (a target the group does not hold)."""
    return _labelled(_BLANK, UNUSED, NOT_REGISTERED)


def _step(state: str, event: str) -> _Step:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise ValueError(f"can't handle event {event!r} when state={state!r}") from None


def deregister(health: TargetHealth) -> TargetHealth:
    """The target was deregistered.

    Returns: ``draining`` / Target.DeregistrationInProgress (unchanged if already draining).
    Raises: ValueError for a state the table does not know.
    """
    step = _step(health.state, DEREGISTER)
    if health.state == DRAINING:
        return health
    return _labelled(health, step.to, DEREGISTRATION_IN_PROGRESS)


def set_in_use(health: TargetHealth, in_use: bool) -> TargetHealth:
    """The target group is (no longer) used by a listener rule.

    Returns: ``unused`` / Target.NotInUse when not in use; a target leaving that state starts
    over at ``initial`` / Elb.RegistrationInProgress with cleared counters; otherwise unchanged.
    Raises: ValueError for a state the table does not know.
    """
    step = _step(health.state, GROUP_IN_USE if in_use else GROUP_NOT_IN_USE)
    if step.to == health.state:
        if health.state == UNUSED and health.reason != NOT_IN_USE:
            return _labelled(health, UNUSED, NOT_IN_USE)
        return health
    if step.to == UNUSED:
        return new_target(False)
    return new_target(True)


def observe(
    health: TargetHealth, outcome: ProbeOutcome, check: HealthCheck, in_use: bool = True
) -> TargetHealth:
    """Apply one health check result.

    :param in_use: whether any listener rule forwards to the group; when False the result is
        ignored and the target is ``unused`` / Target.NotInUse.
    Returns: the next health value (a new object; ``health`` is not modified).
    Raises: ValueError for a state the table does not know.
    """
    if not in_use or (health.state == UNUSED and health.reason == NOT_IN_USE):
        health = set_in_use(health, in_use)
        if not in_use:
            return health
    step = _step(health.state, PASS if outcome.passed else FAIL)
    if health.state == DRAINING:
        return health
    if outcome.passed:
        successes, failures = health.consecutive_successes + 1, 0
    else:
        successes, failures = 0, health.consecutive_failures + 1
    counted = replace(
        health, consecutive_successes=successes, consecutive_failures=failures, last_outcome=outcome
    )
    run = successes if outcome.passed else failures
    reached = step.threshold is None or run >= _needed(step.threshold, check)
    state = step.to if reached else health.state
    if state == HEALTHY:
        return _labelled(counted, HEALTHY, None)
    if state == UNHEALTHY:
        if outcome.passed:  # recovering, not there yet: keep the failure that put it here
            return counted
        if outcome.kind == "code_mismatch":
            return _labelled(counted, UNHEALTHY, RESPONSE_CODE_MISMATCH, outcome.code)
        return _labelled(counted, UNHEALTHY, TIMEOUT if outcome.kind == "timeout" else FAILED_HEALTH_CHECKS)
    return _labelled(counted, INITIAL, INITIAL_HEALTH_CHECKING)  # still initial, below a threshold


def _needed(threshold: str, check: HealthCheck) -> int:
    if threshold == _ONE:
        return 1
    if threshold == _HEALTHY_N:
        return check.healthy_threshold
    return check.unhealthy_threshold


def outcome_for_status(status: int, matcher: str) -> ProbeOutcome:
    """Classify an HTTP health check response.

    Returns: ``ProbeOutcome.ok(status)`` if the matcher accepts it, else ``mismatch(status)``.
    Raises: ValueError if ``matcher`` is malformed.
    """
    return ProbeOutcome.ok(status) if matcher_accepts(matcher, status) else ProbeOutcome.mismatch(status)


def matcher_accepts(matcher: str, status: int) -> bool:
    """Whether a ``Matcher.HttpCode`` value accepts an HTTP status.

    Accepts ``"200"``, lists ``"200,202"``, ranges ``"200-299"`` and mixtures ``"200-299,302"``.
    Returns: True when ``status`` is listed or inside a range.
    Raises: ValueError if ``matcher`` is malformed.
    """
    for low, high in parse_matcher(matcher):
        if low <= status <= high:
            return True
    return False


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


@functools.lru_cache(maxsize=256)
def parse_matcher(matcher: str) -> tuple[tuple[int, int], ...]:
    """Parse a ``Matcher.HttpCode`` value.

    Returns: inclusive ``(low, high)`` ranges, one per comma-separated item.
    Raises: ValueError if an item is not ``N`` or ``N-M`` with ``N <= M`` (digits only).
    """
    ranges = []
    for item in matcher.split(","):
        item = item.strip()
        low, dash, high = item.partition("-")
        if not _digits(low) or (dash and not _digits(high)):
            raise ValueError(f"invalid HTTP code matcher item {item!r} in {matcher!r}")
        lo, hi = int(low), int(high) if dash else int(low)
        if lo > hi:
            raise ValueError(f"invalid HTTP code range {item!r} in {matcher!r}")
        ranges.append((lo, hi))
    return tuple(ranges)
