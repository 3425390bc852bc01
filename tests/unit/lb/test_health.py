"""portside.core.lb.health: the ELBv2 target health state machine and HTTP code matchers.

Table tests walk each documented transition with the exact reason codes and descriptions;
Hypothesis drives random probe sequences against an independent reading of the ALB rules
("one pass from initial, UnhealthyThresholdCount consecutive failures, HealthyThresholdCount
consecutive successes from unhealthy") and checks the invariants of every value produced.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb import health
from portside.core.lb.health import (
    DRAINING,
    HEALTHY,
    INITIAL,
    REASONS,
    TRANSITIONS,
    UNHEALTHY,
    UNUSED,
    ProbeOutcome,
    TargetHealth,
    deregister,
    matcher_accepts,
    new_target,
    not_registered,
    observe,
    outcome_for_status,
    parse_matcher,
    set_in_use,
)
from portside.core.lb.model import HealthCheck

CHECK = HealthCheck(healthy_threshold=5, unhealthy_threshold=2)
OK = ProbeOutcome.ok(200)
BAD = ProbeOutcome.mismatch(503)
SLOW = ProbeOutcome.timeout()
DOWN = ProbeOutcome.failed("connection refused")


def run(h: TargetHealth, *outcomes: ProbeOutcome, check: HealthCheck = CHECK) -> TargetHealth:
    for outcome in outcomes:
        h = observe(h, outcome, check)
    return h


def test_reason_strings_are_exactly_elbv2s() -> None:
    assert REASONS == {
        "Elb.RegistrationInProgress": "Target registration is in progress",
        "Elb.InitialHealthChecking": "Initial health checks in progress",
        "Target.ResponseCodeMismatch": "Health checks failed with these codes: [{code}]",
        "Target.Timeout": "Request timed out",
        "Target.FailedHealthChecks": "Health checks failed",
        "Target.DeregistrationInProgress": "Target deregistration is in progress",
        "Target.NotRegistered": "Target is not registered to the target group",
        "Target.NotInUse": "Target group is not configured to receive traffic from the load balancer",
    }


def test_new_target_is_initial_registration_in_progress() -> None:
    h = new_target()
    assert (h.state, h.reason, h.description) == (
        INITIAL,
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    )
    assert not h.routable


def test_one_passing_check_makes_an_initial_target_healthy() -> None:
    h = run(new_target(), OK)
    assert (h.state, h.reason, h.description) == (HEALTHY, None, None)
    assert h.routable and h.consecutive_successes == 1 and h.last_outcome == OK


def test_initial_failures_below_threshold_are_initial_health_checking() -> None:
    h = run(new_target(), BAD, check=HealthCheck(unhealthy_threshold=3))
    assert (h.state, h.reason, h.description) == (
        INITIAL,
        "Elb.InitialHealthChecking",
        "Initial health checks in progress",
    )
    h = run(h, OK)
    assert h.state == HEALTHY


@pytest.mark.parametrize(
    ("outcome", "reason", "description"),
    [
        (BAD, "Target.ResponseCodeMismatch", "Health checks failed with these codes: [503]"),
        (SLOW, "Target.Timeout", "Request timed out"),
        (DOWN, "Target.FailedHealthChecks", "Health checks failed"),
    ],
)
def test_unhealthy_threshold_failures_from_initial(
    outcome: ProbeOutcome, reason: str, description: str
) -> None:
    h = run(new_target(), outcome, outcome)
    assert (h.state, h.reason, h.description) == (UNHEALTHY, reason, description)
    assert h.consecutive_failures == 2 and h.consecutive_successes == 0


def test_healthy_target_needs_consecutive_failures() -> None:
    h = run(new_target(), OK, BAD)
    assert h.state == HEALTHY and h.consecutive_failures == 1
    h = run(h, OK, BAD)  # a success in between resets the count
    assert h.state == HEALTHY
    h = run(h, SLOW)
    assert (h.state, h.reason) == (UNHEALTHY, "Target.Timeout")


def test_unhealthy_needs_healthy_threshold_successes_and_keeps_its_reason() -> None:
    h = run(new_target(), OK, BAD, BAD)
    assert h.state == UNHEALTHY
    h = run(h, OK, OK, OK, OK)
    assert (h.state, h.reason, h.description) == (
        UNHEALTHY,
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [503]",
    )
    h = run(h, DOWN)  # reason follows the latest failure, count starts again
    assert h.reason == "Target.FailedHealthChecks"
    h = run(h, OK, OK, OK, OK)
    assert h.state == UNHEALTHY
    h = run(h, OK)
    assert (h.state, h.reason) == (HEALTHY, None)


def test_thresholds_come_from_the_check() -> None:
    check = HealthCheck(healthy_threshold=2, unhealthy_threshold=10)
    h = run(new_target(), *[DOWN] * 9, check=check)
    assert h.state == INITIAL
    h = run(h, DOWN, check=check)
    assert h.state == UNHEALTHY
    assert run(h, OK, OK, check=check).state == HEALTHY


@pytest.mark.parametrize("prefix", [(), (OK,), (OK, BAD, BAD)])
def test_deregistration_drains_and_draining_is_terminal(prefix: tuple[ProbeOutcome, ...]) -> None:
    h = deregister(run(new_target(), *prefix))
    assert (h.state, h.reason, h.description) == (
        DRAINING,
        "Target.DeregistrationInProgress",
        "Target deregistration is in progress",
    )
    assert run(h, OK, OK, OK, OK, OK, BAD, BAD, BAD) == h
    assert deregister(h) == h
    assert set_in_use(h, False) == h
    assert observe(h, OK, CHECK, in_use=False) == h


def test_not_in_use_group() -> None:
    h = new_target(in_use=False)
    assert (h.state, h.reason, h.description) == (
        UNUSED,
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    )
    assert observe(h, OK, CHECK, in_use=False) == h  # not probed, result ignored
    h2 = observe(h, OK, CHECK, in_use=True)  # group now used: starts over and counts this probe
    assert h2.state == HEALTHY
    healthy = run(new_target(), OK)
    assert observe(healthy, OK, CHECK, in_use=False).reason == "Target.NotInUse"
    assert set_in_use(set_in_use(healthy, False), True) == new_target()
    assert set_in_use(healthy, True) is healthy


def test_not_registered_and_illegal_transitions() -> None:
    h = not_registered()
    assert (h.state, h.reason, h.description) == (
        UNUSED,
        "Target.NotRegistered",
        "Target is not registered to the target group",
    )
    with pytest.raises(ValueError, match="can't handle event 'pass' when state='unused'"):
        observe(h, OK, CHECK)
    with pytest.raises(ValueError):
        observe(TargetHealth("unavailable"), OK, CHECK)
    assert set_in_use(h, False).reason == "Target.NotInUse"


def test_transition_table_covers_every_probe_event_of_live_states() -> None:
    for state in (INITIAL, HEALTHY, UNHEALTHY, DRAINING):
        for event in ("pass", "fail", "deregister", "not-in-use", "in-use"):
            assert (state, event) in TRANSITIONS


# ------------------------------------------------------------------------------------------
# matcher


@pytest.mark.parametrize(
    ("matcher", "status", "expected"),
    [
        ("200", 200, True),
        ("200", 201, False),
        ("200,202", 202, True),
        ("200,202", 201, False),
        ("200-299", 200, True),
        ("200-299", 299, True),
        ("200-299", 300, False),
        ("200-299,302", 302, True),
        (" 200 , 404 ", 404, True),
        ("499", 499, True),
    ],
)
def test_matcher_accepts(matcher: str, status: int, expected: bool) -> None:
    assert matcher_accepts(matcher, status) is expected


@pytest.mark.parametrize("matcher", ["", "2xx", "200-", "-200", "299-200", "200,,202", "２00", "200-2a"])
def test_malformed_matcher_raises(matcher: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(matcher)


def test_outcome_for_status() -> None:
    assert outcome_for_status(204, "200-299") == ProbeOutcome.ok(204)
    assert outcome_for_status(500, "200") == ProbeOutcome.mismatch(500)


# ------------------------------------------------------------------------------------------
# Properties

outcomes = st.lists(st.sampled_from([OK, BAD, SLOW, DOWN]), max_size=40)
thresholds = st.tuples(st.integers(2, 10), st.integers(2, 10))


def reference_state(seq: list[ProbeOutcome], healthy_n: int, unhealthy_n: int) -> str:
    """The ALB guide's rules, read independently: run lengths decide, nothing else."""
    state, run_ok, run_bad = INITIAL, 0, 0
    for o in seq:
        run_ok, run_bad = (run_ok + 1, 0) if o.passed else (0, run_bad + 1)
        if state == INITIAL and run_ok >= 1:
            state = HEALTHY
        elif state in (INITIAL, HEALTHY) and run_bad >= unhealthy_n:
            state = UNHEALTHY
        elif state == UNHEALTHY and run_ok >= healthy_n:
            state = HEALTHY
    return state


@given(outcomes, thresholds)
def test_state_follows_the_documented_rules(seq: list[ProbeOutcome], th: tuple[int, int]) -> None:
    check = HealthCheck(healthy_threshold=th[0], unhealthy_threshold=th[1])
    h = new_target()
    for o in seq:
        h = observe(h, o, check)
        # invariants of every value produced
        assert (h.reason is None) == (h.state == HEALTHY)
        assert (h.description is None) == (h.reason is None)
        if h.reason is not None and h.reason != "Target.ResponseCodeMismatch":
            assert h.description == REASONS[h.reason]
        assert min(h.consecutive_successes, h.consecutive_failures) == 0
        assert max(h.consecutive_successes, h.consecutive_failures) >= 1
        assert h.last_outcome == o
    assert h.state == reference_state(seq, *th)
    if h.state == UNHEALTHY:
        last_failure = next(o for o in reversed(seq) if not o.passed)
        assert (
            h.reason
            == {
                "code_mismatch": "Target.ResponseCodeMismatch",
                "timeout": "Target.Timeout",
                "failed": "Target.FailedHealthChecks",
            }[last_failure.kind]
        )


@given(outcomes, outcomes, thresholds)
def test_draining_never_changes(
    before: list[ProbeOutcome], after: list[ProbeOutcome], th: tuple[int, int]
) -> None:
    check = HealthCheck(healthy_threshold=th[0], unhealthy_threshold=th[1])
    h = new_target()
    for o in before:
        h = observe(h, o, check)
    drained = deregister(h)
    for o in after:
        assert observe(drained, o, check) == drained


@given(
    st.lists(st.tuples(st.integers(200, 499), st.integers(0, 60)), min_size=1, max_size=4),
    st.integers(100, 599),
)
def test_matcher_accepts_equals_membership(ranges: list[tuple[int, int]], status: int) -> None:
    spec = ",".join(str(lo) if span == 0 else f"{lo}-{lo + span}" for lo, span in ranges)
    assert matcher_accepts(spec, status) == any(lo <= status <= lo + span for lo, span in ranges)


def test_module_exports_exist() -> None:
    for name in health.__all__:
        assert hasattr(health, name)
