"""portside.core.autoscale: target tracking and step scaling against AWS's documented examples
(spec alb.md §4.3-§4.4; [AAS-TT], [AAS-STEP], [ECS-AS]) plus properties (hypothesis)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.autoscale import (
    ALB_REQUEST_COUNT_PER_TARGET,
    ECS_CPU_UTILIZATION,
    ECS_MEMORY_UTILIZATION,
    AdjustmentType,
    ComparisonOperator,
    Decision,
    Direction,
    MetricAggregation,
    NotScaledReason,
    StepAdjustment,
    StepAlarm,
    StepScalingPolicy,
    Suspension,
    TargetTrackingPolicy,
    adjusted_capacity,
    alarm_cause,
    decide,
    metric_key,
    per_target_per_minute,
    round_percent_change,
)

NOW = 10_000.0
CPU = ECS_CPU_UTILIZATION


def series(*values: float, end: float = NOW, period: float = 60.0) -> list[tuple[float, float]]:
    """Datapoints one period apart, the last at ``end``."""
    return [(end - period * (len(values) - 1 - i), v) for i, v in enumerate(values)]


def cpu_policy(target: float = 50.0, **extra: object) -> TargetTrackingPolicy:
    return TargetTrackingPolicy(
        "cpu50", CPU, target, alarm_high="TargetTracking-service/default/web-AlarmHigh-1",
        alarm_low="TargetTracking-service/default/web-AlarmLow-1", **extra,  # type: ignore[arg-type]
    )


def run(policies: list, current: int, metrics: dict, *, low: int = 1, high: int = 100,
        out_at: float | None = None, in_at: float | None = None, now: float = NOW,
        deploying: bool = False, **extra: object) -> Decision | None:
    return decide(policies, current, low, high, metrics, out_at, in_at, now, deploying, **extra)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- helpers


def test_per_target_per_minute_normalises_any_period() -> None:
    assert per_target_per_minute(600, 3, 60) == 200
    assert per_target_per_minute(100, 2, 20) == 150  # 20 s high-resolution period: ×3
    assert per_target_per_minute(50, 0, 60) == 50  # no targets: one target's share is everything
    with pytest.raises(ValueError):
        per_target_per_minute(1, 1, 0)


def test_metric_key_and_cause_text() -> None:
    assert metric_key(CPU) == CPU
    label = "app/web/0123456789abcdef/targetgroup/tg/0123456789abcdef"
    assert metric_key(ALB_REQUEST_COUNT_PER_TARGET, label) == f"ALBRequestCountPerTarget/{label}"
    assert alarm_cause("A", "p") == "monitor alarm A in state ALARM triggered policy p"


# ----------------------------------------------------------------------------- target tracking


def test_scale_out_proportionally_target_50_two_tasks_at_100_gives_4() -> None:
    decision = run([cpu_policy()], 2, {CPU: series(100, 100, 100)})
    assert decision == Decision(
        4, "monitor alarm TargetTracking-service/default/web-AlarmHigh-1 in state ALARM triggered policy cpu50",
        "cpu50", Direction.OUT, "TargetTracking-service/default/web-AlarmHigh-1", 2,
    )
    assert decision.scales


def test_scale_out_needs_three_consecutive_breaching_datapoints() -> None:
    assert run([cpu_policy()], 2, {CPU: series(100, 100)}) is None  # only two
    assert run([cpu_policy()], 2, {CPU: series(100, 40, 100)}) is None  # not consecutive breaches
    assert run([cpu_policy()], 2, {CPU: series(50, 50, 50)}) is None  # at the target is not above it
    gap = [(NOW - 240, 100.0), (NOW - 60, 100.0), (NOW, 100.0)]
    assert run([cpu_policy()], 2, {CPU: gap}) is None  # a missing minute: insufficient data
    stale = series(100, 100, 100, end=NOW - 300)
    assert run([cpu_policy()], 2, {CPU: stale}) is None
    assert run([cpu_policy()], 2, {CPU: series(100, 100, math.nan)}) is None


def test_scale_out_uses_latest_value_and_rounds_up() -> None:
    assert run([cpu_policy()], 10, {CPU: series(60, 70, 55)}).desired == 11  # 10 × 55/50 = 11 exactly
    assert run([cpu_policy()], 10, {CPU: series(60, 70, 56)}).desired == 12  # 11.2 -> 12
    # 80 against a target of 70 with 10 tasks: 11.43 -> 12 (Nomad's worked example, spec §4.3)
    assert run([cpu_policy(70.0)], 10, {CPU: series(80, 80, 80)}).desired == 12


def test_scale_from_zero_with_one_datapoint_by_one_task() -> None:
    policy = TargetTrackingPolicy("req", "rq", 100.0)
    decision = run([policy], 0, {"rq": series(5000)}, low=0)
    assert decision is not None and decision.desired == 1 and decision.alarm_name == "req-AlarmHigh"
    assert run([policy], 0, {"rq": series(0.0)}, low=0) is None


def test_scale_in_only_after_fifteen_datapoints_more_than_ten_percent_below() -> None:
    low14 = {CPU: series(*[20] * 14)}
    assert run([cpu_policy()], 10, low14) is None
    decision = run([cpu_policy()], 10, {CPU: series(*[20] * 15)})
    assert decision is not None and decision.direction is Direction.IN and decision.desired == 4  # ceil(10×20/50)
    assert decision.alarm_name == "TargetTracking-service/default/web-AlarmLow-1"
    # 46 is below the target but within 10 % of it (threshold 45): no scale-in
    assert run([cpu_policy()], 10, {CPU: series(*[46] * 15)}) is None
    # one datapoint at or above 45 in the window holds it back
    assert run([cpu_policy()], 10, {CPU: series(*[20] * 14, 45)}) is None


def test_scale_in_uses_the_window_peak_so_it_never_removes_too_much() -> None:
    decision = run([cpu_policy()], 10, {CPU: series(*[10] * 14, 40)})
    assert decision is not None and decision.desired == 8  # ceil(10 × 40/50), not 10 × 10/50


def test_scale_out_cooldown_blocks_unless_larger() -> None:
    policy = cpu_policy()
    # scaled 2 -> 4 at NOW-100; tasks now running, load still 100 %: 8 would be "larger" from 4,
    # but within the cooldown the computation starts from the base (2): 4, not larger -> wait
    held = run([policy], 4, {CPU: series(100, 100, 100)}, out_at=NOW - 100, scale_out_base=2)
    assert held is None
    # a larger scale-out goes ahead during the cooldown: 2 × 150/50 = 6 > 4
    bigger = run([policy], 4, {CPU: series(150, 150, 150)}, out_at=NOW - 100, scale_out_base=2)
    assert bigger is not None and bigger.desired == 6 and bigger.base_capacity == 2
    # after the cooldown the running count is the base again
    after = run([policy], 4, {CPU: series(100, 100, 100)}, out_at=NOW - 301, scale_out_base=2)
    assert after is not None and after.desired == 8


def test_running_count_is_the_starting_point_no_runaway() -> None:
    # desired 4 but only 2 running (the other two cannot be placed): 2 × 100/50 = 4 -> nothing to add
    decision = run([cpu_policy()], 2, {CPU: series(100, 100, 100)}, desired_capacity=4)
    assert decision is not None and not decision.scales
    assert decision.not_scaled_reason is NotScaledReason.ALREADY_AT_DESIRED_CAPACITY and decision.desired == 4


def test_scale_in_cooldown_blocks_scale_in_but_not_scale_out() -> None:
    low = {CPU: series(*[20] * 15)}
    assert run([cpu_policy()], 10, low, in_at=NOW - 100) is None
    assert run([cpu_policy()], 10, low, in_at=NOW - 301).desired == 4
    # a scale-out alarm during the scale-in cooldown scales out at once ...
    assert run([cpu_policy()], 4, {CPU: series(100, 100, 100)}, in_at=NOW - 100).desired == 8
    # ... and ends that cooldown
    assert run([cpu_policy()], 10, low, in_at=NOW - 200, out_at=NOW - 100, scale_out_base=9).desired == 4
    # custom cooldowns
    assert run([cpu_policy(scale_in_cooldown_s=60.0)], 10, low, in_at=NOW - 100).desired == 4


def test_disable_scale_in() -> None:
    assert run([cpu_policy(disable_scale_in=True)], 10, {CPU: series(*[20] * 15)}) is None
    assert run([cpu_policy(disable_scale_in=True)], 2, {CPU: series(100, 100, 100)}).desired == 4


def test_no_scale_in_during_a_deployment_scale_out_continues() -> None:
    assert run([cpu_policy()], 10, {CPU: series(*[20] * 15)}, deploying=True) is None
    assert run([cpu_policy()], 2, {CPU: series(100, 100, 100)}, deploying=True).desired == 4


def test_suspended_directions() -> None:
    low, high = {CPU: series(*[20] * 15)}, {CPU: series(100, 100, 100)}
    assert run([cpu_policy()], 10, low, suspended=Suspension(scale_in=True)) is None
    assert run([cpu_policy()], 2, high, suspended=Suspension(scale_in=True)).desired == 4
    assert run([cpu_policy()], 2, high, suspended=Suspension(scale_out=True)) is None
    assert run([cpu_policy()], 10, low, suspended=Suspension(scale_out=True)).desired == 4


def test_clamping_and_out_of_range_desired_counts() -> None:
    high = {CPU: series(400, 400, 400)}
    assert run([cpu_policy()], 4, high, high=10).desired == 10  # 32 clamped to the maximum
    at_max = run([cpu_policy()], 10, high, high=10)
    assert at_max is not None and at_max.not_scaled_reason is NotScaledReason.ALREADY_AT_MAX_CAPACITY
    assert at_max.desired == 10
    low = {CPU: series(*[1] * 15)}
    assert run([cpu_policy()], 10, low, low=3).desired == 3  # 1 clamped to the minimum
    at_min = run([cpu_policy()], 3, low, low=3)
    assert at_min is not None and at_min.not_scaled_reason is NotScaledReason.ALREADY_AT_MIN_CAPACITY
    # desired below the minimum: the next scale-out raises it to the minimum, then as needed
    assert run([cpu_policy()], 1, {CPU: series(60, 60, 60)}, low=5, desired_capacity=1).desired == 5
    # ... and a scale-in leaves it alone
    below = run([cpu_policy()], 1, low, low=5, desired_capacity=1)
    assert below is not None and not below.scales
    # desired above the maximum: the next scale-in lowers it to the maximum, a scale-out leaves it
    assert run([cpu_policy()], 12, {CPU: series(*[44] * 15)}, high=8).desired == 8
    above = run([cpu_policy()], 12, high, high=8)
    assert above is not None and above.not_scaled_reason is NotScaledReason.ALREADY_AT_MAX_CAPACITY


def test_several_policies_out_if_any_in_only_if_all() -> None:
    memory = TargetTrackingPolicy("mem70", ECS_MEMORY_UTILIZATION, 70.0, alarm_high="MH", alarm_low="ML")
    cpu_low, mem_high = series(*[10] * 15), series(*[60] * 12, 140, 140, 140)
    out = run([cpu_policy(), memory], 4, {CPU: cpu_low, ECS_MEMORY_UTILIZATION: mem_high})
    assert out is not None and out.direction is Direction.OUT and out.policy_name == "mem70" and out.desired == 8
    # cpu wants in, memory sits between its thresholds: no scale-in
    mem_ok = series(*[65] * 15)
    assert run([cpu_policy(), memory], 4, {CPU: cpu_low, ECS_MEMORY_UTILIZATION: mem_ok}) is None
    # memory has no data: no scale-in either
    assert run([cpu_policy(), memory], 4, {CPU: cpu_low}) is None
    # both want in: the largest resulting capacity wins
    both = run([cpu_policy(), memory], 10, {CPU: cpu_low, ECS_MEMORY_UTILIZATION: series(*[35] * 15)})
    assert both is not None and both.desired == 5 and both.policy_name == "mem70"  # cpu says 2, memory 5
    # a policy with scale-in disabled does not vote
    quiet = TargetTrackingPolicy("mem70", ECS_MEMORY_UTILIZATION, 70.0, disable_scale_in=True)
    assert run([cpu_policy(), quiet], 10, {CPU: cpu_low, ECS_MEMORY_UTILIZATION: mem_ok}).desired == 2
    # both want out: the largest capacity wins
    cpu_high = series(75, 75, 75)
    biggest = run([cpu_policy(), memory], 4, {CPU: cpu_high, ECS_MEMORY_UTILIZATION: mem_high})
    assert biggest.desired == 8 and biggest.policy_name == "mem70"


# ----------------------------------------------------------------------------- step scaling


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [(12.7, 12), (0.67, 1), (-0.58, -1), (-6.67, -6), (1, 1), (-1, -1), (0, 0), (3.3, 3), (-3.9, -3), (2.0, 2)],
)
def test_percent_rounding_as_documented(raw: float, rounded: int) -> None:
    assert round_percent_change(raw) == rounded


@given(st.fractions(min_value=-10_000, max_value=10_000))
def test_percent_rounding_is_toward_zero_but_never_zero(raw: Fraction) -> None:
    rounded = round_percent_change(raw)
    if raw == 0:
        assert rounded == 0
        return
    assert rounded != 0 and (rounded > 0) == (raw > 0)
    assert abs(rounded) <= max(1, abs(raw)) and abs(rounded) > abs(raw) - 1


def test_adjustment_types() -> None:
    assert adjusted_capacity(AdjustmentType.CHANGE_IN_CAPACITY, 5, 3) == 8  # [AAS-STEP] example
    assert adjusted_capacity(AdjustmentType.EXACT_CAPACITY, 5, 3) == 5
    assert adjusted_capacity(AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, 10, 10) == 11
    # "25 percent ... MinAdjustmentMagnitude of 2 ... 4 tasks ... scales out by 2 tasks" [BC]
    assert adjusted_capacity(AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, 25, 4, 2) == 6
    assert adjusted_capacity(AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, -25, 4, 2) == 2
    assert adjusted_capacity(AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, 0, 4, 2) == 4


def _guide_policies() -> list[StepScalingPolicy]:
    """The user guide's example: threshold 50 %, PercentChangeInCapacity steps both ways."""
    out_steps = (StepAdjustment(0, 0, 10), StepAdjustment(10, 10, 20), StepAdjustment(30, 20, None))
    in_steps = (StepAdjustment(0, -10, 0), StepAdjustment(-10, -20, -10), StepAdjustment(-30, None, -20))
    pct = AdjustmentType.PERCENT_CHANGE_IN_CAPACITY
    return [
        StepScalingPolicy("out", pct, out_steps, StepAlarm("hi", "m", 50, ComparisonOperator.GREATER_THAN_OR_EQUAL), cooldown_s=0),
        StepScalingPolicy("in", pct, in_steps, StepAlarm("lo", "m", 50, ComparisonOperator.LESS_THAN_OR_EQUAL), cooldown_s=0),
    ]


@pytest.mark.parametrize(
    ("capacity", "metric", "desired"),
    [
        (10, 60, 11),  # +10 % of 10
        (11, 70, 14),  # +30 % of 11 = 3.3 -> 3
        (14, 40, 13),  # −10 % of 14 = 1.4 -> 1
        (13, 30, 10),  # −30 % of 13 = 3.9 -> 3
    ],
)
def test_step_scaling_user_guide_example(capacity: int, metric: float, desired: int) -> None:
    decision = run(_guide_policies(), capacity, {"m": series(metric)})
    assert decision is not None and decision.desired == desired


def test_step_scaling_no_change_in_the_zero_steps() -> None:
    assert run(_guide_policies(), 10, {"m": series(55)}) is None  # [0, 10) adds 0 %
    assert run(_guide_policies(), 10, {"m": series(45)}) is None


def test_step_bounds_inclusive_above_exclusive_below() -> None:
    steps = (StepAdjustment(1, 0, 10), StepAdjustment(5, 10, None))
    up = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps, StepAlarm("a", "m", 50, ComparisonOperator.GREATER_THAN_OR_EQUAL))
    assert run([up], 4, {"m": series(60)}).desired == 9  # 60 − 50 = 10: lower bound inclusive
    assert run([up], 4, {"m": series(50)}).desired == 5
    steps_down = (StepAdjustment(-1, -10, 0), StepAdjustment(-3, None, -10))
    down = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps_down, StepAlarm("a", "m", 50, ComparisonOperator.LESS_THAN))
    assert run([down], 8, {"m": series(40)}).desired == 5  # −10 belongs to (−∞, −10]: upper bound inclusive
    assert run([down], 8, {"m": series(41)}).desired == 7  # −9 is in (−10, 0]: lower bound exclusive


def test_step_alarm_evaluation_periods_and_aggregation() -> None:
    steps = (StepAdjustment(1, 0, 20), StepAdjustment(4, 20, None))
    alarm = StepAlarm("a", "m", 50, ComparisonOperator.GREATER_THAN, evaluation_periods=3, datapoints_to_alarm=2)
    average = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps, alarm)
    assert run([average], 4, {"m": series(40, 55, 45)}) is None  # 1 of 3 breach
    assert run([average], 4, {"m": series(40, 60, 80)}).desired == 5  # mean 60, 10 over: +1
    maximum = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps, alarm, aggregation=MetricAggregation.MAXIMUM)
    assert run([maximum], 4, {"m": series(40, 60, 80)}).desired == 8  # max 80, 30 over: +4
    unbound = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps)
    assert run([unbound], 4, {"m": series(90, 90, 90)}) is None


def test_step_cooldown_counts_the_previous_scale_out() -> None:
    """"an alarm triggers ... increase the capacity by 2 ... triggers again during the cooldown
    ... at a more aggressive step adjustment of 3 ... only 1 is added" [AAS-STEP]."""
    steps = (StepAdjustment(2, 0, 20), StepAdjustment(3, 20, None))
    policy = StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps, StepAlarm("a", "m", 50, ComparisonOperator.GREATER_THAN_OR_EQUAL))
    first = run([policy], 10, {"m": series(60)})
    assert first.desired == 12 and first.base_capacity == 10
    again = run([policy], 12, {"m": series(75)}, out_at=NOW - 60, scale_out_base=first.base_capacity)
    assert again.desired == 13
    assert run([policy], 12, {"m": series(60)}, out_at=NOW - 60, scale_out_base=10) is None  # not larger


def test_step_exact_capacity_and_combining_with_percent() -> None:
    # "one policy increases capacity by 3, another by 200 percent, current capacity 10 ... 30" [BC]
    ge = ComparisonOperator.GREATER_THAN_OR_EQUAL
    plus3 = StepScalingPolicy("plus3", AdjustmentType.CHANGE_IN_CAPACITY, (StepAdjustment(3, 0, None),), StepAlarm("a", "m", 50, ge))
    double = StepScalingPolicy("x3", AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, (StepAdjustment(200, 0, None),), StepAlarm("b", "m", 50, ge))
    decision = run([plus3, double], 10, {"m": series(70)})
    assert decision.desired == 30 and decision.policy_name == "x3" and decision.reason.endswith("triggered policy x3")
    exact = StepScalingPolicy("exact", AdjustmentType.EXACT_CAPACITY, (StepAdjustment(6, 0, None),), StepAlarm("c", "m", 50, ge))
    assert run([exact], 10, {"m": series(70)}).desired == 6
    assert run([exact], 3, {"m": series(70)}).desired == 6
    assert run([exact], 6, {"m": series(70)}) is None


def test_step_scale_in_is_not_blocked_by_target_tracking() -> None:
    down = StepScalingPolicy("down", AdjustmentType.CHANGE_IN_CAPACITY, (StepAdjustment(-2, None, 0),),
                             StepAlarm("lo", "m", 30, ComparisonOperator.LESS_THAN))
    # cpu sits between its thresholds (not ready to scale in), the step policy still scales in
    decision = run([cpu_policy(), down], 6, {CPU: series(*[48] * 15), "m": series(10)})
    assert decision is not None and decision.desired == 4 and decision.policy_name == "down"
    # but any scale-out alarm wins
    assert run([cpu_policy(), down], 6, {CPU: series(100, 100, 100), "m": series(10)}).direction is Direction.OUT
    assert run([down], 6, {"m": series(10)}, in_at=NOW - 10) is None  # its own cooldown


# ----------------------------------------------------------------------------- properties

capacities = st.integers(min_value=0, max_value=200)
values = st.floats(min_value=0, max_value=1000, allow_nan=False)


@given(
    current=capacities, desired=capacities, low=st.integers(0, 50), span=st.integers(0, 150),
    metric=st.lists(values, min_size=15, max_size=15), target=st.floats(min_value=1, max_value=500),
    deploying=st.booleans(),
)
def test_decisions_stay_in_bounds_and_move_the_right_way(
    current: int, desired: int, low: int, span: int, metric: list[float], target: float, deploying: bool
) -> None:
    high = low + span
    policy = TargetTrackingPolicy("p", CPU, target)
    decision = decide([policy], current, low, high, {CPU: series(*metric)}, None, None, NOW, deploying,
                      desired_capacity=desired)
    if decision is None or not decision.scales:
        if decision is not None:
            assert decision.desired == desired
        return
    assert low <= decision.desired <= high
    if decision.direction is Direction.OUT:
        assert decision.desired > desired
        # never adds too little: at least ceil(current × latest / target), unless capped
        needed = max(1, math.ceil(round(current * metric[-1] / target, 9)))
        assert decision.desired >= min(needed, high)
    else:
        assert not deploying
        assert decision.desired < desired
        # never removes too much: the remaining tasks at the window's peak stay under the target
        assert decision.desired >= min(math.ceil(round(current * max(metric) / target, 9)), high) or decision.desired == low


@given(current=st.integers(1, 100), a=values, b=values)
def test_a_higher_metric_never_asks_for_less(current: int, a: float, b: float) -> None:
    low_value, high_value = sorted((a, b))
    policy = TargetTrackingPolicy("p", CPU, 50.0)

    def desired_for(value: float) -> int:
        decision = decide([policy], current, 0, 1000, {CPU: series(value, value, value)}, None, None, NOW)
        return decision.desired if decision is not None else current

    assert desired_for(low_value) <= desired_for(high_value)


@given(current=st.integers(0, 100), metric=st.lists(values, min_size=15, max_size=15))
def test_never_scale_in_without_fifteen_datapoints(current: int, metric: list[float]) -> None:
    decision = decide([TargetTrackingPolicy("p", CPU, 50.0)], current, 0, 1000, {CPU: series(*metric[:14])}, None, None, NOW)
    assert decision is None or decision.direction is Direction.OUT
