"""portside.core.deployment: ECS's rolling-update arithmetic, table by table (spec ecs.md §3.1-§3.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.deployment import (
    LAUNCH_BACKOFF_MAX_S,
    breaker_counts_failure,
    circuit_breaker_stage,
    circuit_breaker_threshold,
    configuration_blocks_deployment,
    maximum_tasks,
    minimum_healthy_tasks,
    next_launch_backoff_s,
    start_first_allowance,
    stop_first_allowance,
)


# The developer guide's own examples (deployment-type-ecs.md, quoted in spec §3.1).
@pytest.mark.parametrize(
    ("desired", "minimum_percent", "may_stop_first"),
    [
        (4, 50, 2),  # "min 50 %, desired 4 → may stop 2 first"
        (2, 75, 0),  # "min 75 %, desired 2 → can stop 0"
        (4, 100, 0),
        (4, 0, 4),
        (3, 50, 1),  # ceil(1.5) = 2 must stay
    ],
)
def test_stop_first_allowance_matches_the_guide(
    desired: int, minimum_percent: int, may_stop_first: int
) -> None:
    assert stop_first_allowance(desired, minimum_percent) == may_stop_first


@pytest.mark.parametrize(
    ("desired", "maximum_percent", "may_start_first"),
    [
        (3, 125, 0),  # "max 125 %, desired 3 → can start 0"
        (4, 200, 4),  # "can start four new tasks before stopping four existing tasks"
        (4, 125, 1),
        (3, 150, 1),  # floor(4.5) = 4
        (0, 200, 0),
    ],
)
def test_start_first_allowance_matches_the_guide(
    desired: int, maximum_percent: int, may_start_first: int
) -> None:
    assert start_first_allowance(desired, maximum_percent) == may_start_first


def test_minimum_rounds_up_and_maximum_rounds_down() -> None:
    assert minimum_healthy_tasks(3, 50) == 2
    assert minimum_healthy_tasks(4, 75) == 3  # exact on integers, no 2.9999
    assert minimum_healthy_tasks(10, 33) == 4
    assert maximum_tasks(3, 150) == 4
    assert maximum_tasks(10, 133) == 13
    assert minimum_healthy_tasks(0, 100) == 0 and maximum_tasks(0, 200) == 0


def test_minimum_is_clamped_to_desired() -> None:
    assert minimum_healthy_tasks(4, 150) == 4
    assert minimum_healthy_tasks(4, -10) == 0


@pytest.mark.parametrize(
    ("desired", "minimum_percent", "maximum_percent", "blocked"),
    [
        (3, 100, 125, True),  # the guide's example
        (2, 75, 100, True),
        (4, 100, 100, True),  # "min=max=100 blocks draining/deploys"
        (4, 100, 200, False),
        (4, 50, 100, False),
        (0, 100, 100, False),
    ],
)
def test_configuration_blocks_deployment(
    desired: int, minimum_percent: int, maximum_percent: int, blocked: bool
) -> None:
    assert configuration_blocks_deployment(desired, minimum_percent, maximum_percent) is blocked


@given(st.integers(0, 1000), st.integers(0, 100), st.integers(100, 400))
def test_minimum_never_exceeds_desired_never_exceeds_maximum(desired: int, lo: int, hi: int) -> None:
    assert 0 <= minimum_healthy_tasks(desired, lo) <= desired <= maximum_tasks(desired, hi)


# §3.2: "Threshold = ceil(0.5*desired) clamped to [10, 200] (desired 1→10, 25→13, 400→200)".
@pytest.mark.parametrize(
    ("desired", "threshold"),
    [(0, 10), (1, 10), (20, 10), (21, 11), (25, 13), (399, 200), (400, 200), (800, 200)],
)
def test_circuit_breaker_threshold(desired: int, threshold: int) -> None:
    assert circuit_breaker_threshold(desired) == threshold


def test_circuit_breaker_stages_count_different_failures() -> None:
    assert circuit_breaker_stage(False) == 1 and circuit_breaker_stage(True) == 2
    # Stage 1: a task that never reached RUNNING counts.
    assert breaker_counts_failure(had_running_task=False, reached_running=False, failed_health_check=False)
    # Stage 2: only health-check failures count; failing to reach RUNNING is ignored …
    assert not breaker_counts_failure(had_running_task=True, reached_running=False, failed_health_check=False)
    assert breaker_counts_failure(had_running_task=True, reached_running=True, failed_health_check=True)
    # … and a task that ran and exited on its own counts in neither (containers-roadmap#1206).
    assert not breaker_counts_failure(had_running_task=True, reached_running=True, failed_health_check=False)


def test_launch_backoff_is_exponential_and_capped_at_15_minutes() -> None:
    assert [next_launch_backoff_s(n) for n in range(10)] == [0, 10, 20, 40, 80, 160, 320, 640, 900, 900]
    assert next_launch_backoff_s(-3) == 0.0
    assert next_launch_backoff_s(10**6) == LAUNCH_BACKOFF_MAX_S == 900.0


@given(st.integers(0, 10_000))
def test_launch_backoff_is_monotonic(n: int) -> None:
    assert next_launch_backoff_s(n) <= next_launch_backoff_s(n + 1) <= LAUNCH_BACKOFF_MAX_S
