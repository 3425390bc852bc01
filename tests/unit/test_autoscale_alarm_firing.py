"""core.autoscale: a step scaling policy invoked by a CloudWatch alarm in ALARM (``AlarmFiring``):
the alarm's evaluated values, aggregated as the policy says, pick the step."""

from __future__ import annotations

import pytest

from portside.core.autoscale import (
    AdjustmentType,
    AlarmFiring,
    Direction,
    MetricAggregation,
    StepAdjustment,
    StepScalingPolicy,
    decide,
)

NOW = 10_000.0
STEPS_OUT = (StepAdjustment(1, 0, 50), StepAdjustment(3, 50, None))
STEPS_IN = (StepAdjustment(-1, -10, 0), StepAdjustment(-2, None, -10))


def policy(steps: tuple[StepAdjustment, ...], firing: AlarmFiring | None, **extra: object) -> StepScalingPolicy:
    return StepScalingPolicy("p", AdjustmentType.CHANGE_IN_CAPACITY, steps, firing=firing, **extra)  # type: ignore[arg-type]


def run(p: StepScalingPolicy, current: int = 2, **extra: object):  # type: ignore[no-untyped-def]
    return decide([p], current, 1, 10, {}, None, None, NOW, desired_capacity=current, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values,aggregation,desired",
    [
        ((120.0,), MetricAggregation.AVERAGE, 3),  # 20 over: first step, +1
        ((180.0,), MetricAggregation.AVERAGE, 5),  # 80 over: second step, +3
        ((100.0, 160.0), MetricAggregation.AVERAGE, 3),  # average 130: 30 over -> +1
        ((110.0, 160.0), MetricAggregation.MAXIMUM, 5),  # maximum 160: 60 over -> +3
        ((110.0, 160.0), MetricAggregation.MINIMUM, 3),  # minimum 110: 10 over -> +1
    ],
)
def test_the_alarms_values_pick_the_step(values: tuple[float, ...], aggregation: MetricAggregation, desired: int) -> None:
    decision = run(policy(STEPS_OUT, AlarmFiring("high", 100.0, True, values), aggregation=aggregation))
    assert decision is not None and decision.scales
    assert (decision.desired, decision.direction) == (desired, Direction.OUT)
    assert decision.reason == "monitor alarm high in state ALARM triggered policy p"


def test_a_low_alarm_scales_in_by_the_bounds_below_its_threshold() -> None:
    decision = run(policy(STEPS_IN, AlarmFiring("low", 50.0, False, (45.0,))), current=5)
    assert decision is not None and (decision.desired, decision.direction) == (4, Direction.IN)
    decision = run(policy(STEPS_IN, AlarmFiring("low", 50.0, False, (20.0,))), current=5)
    assert decision is not None and decision.desired == 3


def test_no_alarm_or_an_alarm_without_values_does_not_fire() -> None:
    assert run(policy(STEPS_OUT, None)) is None
    assert run(policy(STEPS_OUT, AlarmFiring("high", 100.0, True, ()))) is None


def test_the_cooldown_holds_a_repeated_firing_while_the_alarm_stays_in_alarm() -> None:
    firing = AlarmFiring("high", 100.0, True, (120.0,))
    p = policy(STEPS_OUT, firing, cooldown_s=60.0)
    # a scale-out 2 -> 3 ran 10 s ago from base 2; the same step again is not larger: wait
    assert decide([p], 3, 1, 10, {}, NOW - 10, None, NOW, desired_capacity=3, scale_out_base=2) is None
    again = decide([p], 3, 1, 10, {}, NOW - 61, None, NOW, desired_capacity=3, scale_out_base=2)
    assert again is not None and again.desired == 4
