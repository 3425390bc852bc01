"""Application Auto Scaling's decision for one scalable target (spec alb.md §4.3, §4.4, §8.12-13).

Pure: no clock, no IO. The scaler loop gathers metric datapoints, calls :func:`decide` with ``now``
and the target's scaling history, and writes what comes back (``control/autoscaling.py``
``apply_decision``). Calling :func:`decide` again with the same inputs gives the same answer.

Vocabulary
----------
- **datapoint**: ``(timestamp_s, value)``, one per metric period (``period_s``, 60 s: "Amazon ECS
  sends metrics in 1-minute intervals" [ECS-AS]). Datapoints are filed under a **metric key**,
  :func:`metric_key` (the predefined metric type, plus the ResourceLabel for
  ``ALBRequestCountPerTarget``). ``ALBRequestCountPerTarget`` values are requests per target per
  minute whatever the period (:func:`per_target_per_minute`), so a TargetValue means the same at any
  resolution ("optimal average request count per target during any one-minute interval" [BC]).
- **window**: the last N datapoints, which must be consecutive and fresh (:func:`_window`); a
  missing or stale window is INSUFFICIENT_DATA, and "a target tracking scaling policy does not scale
  in when the state of the alarm is INSUFFICIENT_DATA" [AAS-TT].
- **current capacity**: the service's RUNNING task count. "During scaling activities, the actual
  running task count in a service is the value that Service Auto Scaling uses as its starting
  point, as opposed to the desired count ... This prevents excessive (runaway) scaling" [ECS-AS].
  **desired capacity** is the service's desiredCount: a decision changes it only by moving it.

Target tracking (our reading of [AAS-TT], [ECS-TT]; AWS does not publish its formula, spec §4.3)
-------------------------------------------------------------------------------------------------
- AlarmHigh: the last ``SCALE_OUT_DATAPOINTS`` (3) datapoints all above TargetValue. AWS's managed
  alarm is 3 of 3 one-minute datapoints (observed, spec §4.3). Scale out to
  ``ceil(current × latest / target)``: proportional and as fast as it can, rounded up "to avoid
  adding insufficient capacity". From zero tasks one datapoint is enough and the first step is one
  task ("waits for one data point ... scales out by the minimum possible amount" [ECS-AS]).
- AlarmLow: the last ``SCALE_IN_DATAPOINTS`` (15) datapoints all below ``target × (1 −
  SCALE_IN_MARGIN)``, 10 % under the target ("far enough below the target value (usually more
  than 10% lower)" [AAS-TT]; the managed low alarm is 15 of 15, observed). Scale in to
  ``ceil(current × highest value in the window / target)``: the window's peak and rounding up, so
  it never removes too much.
- Cooldowns (default 300 s for ECS [CFN-TT]): within the scale-out cooldown a scale-out happens only
  if it is larger than the one before: the new capacity is computed from the capacity the last
  scale-out started from (``scale_out_base``), so "capacity added by the initiating scale-out
  activity is calculated as part of the desired capacity for the next scale-out" [AAS-TT]. The
  scale-in cooldown blocks scale-in only; a scale-out during it goes ahead and ends it.
- Several policies: scale out if any policy's AlarmHigh fires, scale in only if every target
  tracking policy with scale-in enabled is ready to; the largest resulting capacity wins both ways
  [AAS-TT]. ``DisableScaleIn`` removes a policy from the scale-in vote. A step scaling scale-in is
  not blocked by target tracking policies ("the scale-in activity will not be blocked" [AAS-TT]).

Step scaling ([AAS-STEP], spec §4.4)
------------------------------------
The policy's alarm (:class:`StepAlarm`) fires when ``datapoints_to_alarm`` of its last
``evaluation_periods`` datapoints breach; the window's aggregate (``MetricAggregationType``) minus
the threshold picks the step ("above the breach threshold, the lower bound is inclusive and the
upper bound is exclusive"; below it, the reverse). Adjustments: ChangeInCapacity, ExactCapacity, and
PercentChangeInCapacity rounded as AWS documents (:func:`round_percent_change`) and raised to
``MinAdjustmentMagnitude``. One ``Cooldown`` serves both directions. The alarm is either a
CloudWatch alarm in ALARM naming the policy in its AlarmActions (:class:`AlarmFiring`, evaluated by
``core/alarms.py``; the policy is invoked every round while the alarm stays in ALARM, as
Application Auto Scaling is, and its cooldown keeps that from piling up) or a bound
:class:`StepAlarm` evaluated here.

Everywhere
----------
No scale-in while an ECS deployment is in progress (scale-out continues) [ECS-AS], nor while
DynamicScalingInSuspended; no scale-out while DynamicScalingOutSuspended. Results are clamped to
[MinCapacity, MaxCapacity]; a desired count below the minimum is raised to it by the next
scale-out alarm, one above the maximum lowered to it by the next scale-in alarm, and the other
direction leaves it alone [ECS-AS].
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "ALB_REQUEST_COUNT_PER_TARGET",
    "DEFAULT_COOLDOWN_S",
    "ECS_CPU_UTILIZATION",
    "ECS_MEMORY_UTILIZATION",
    "METRIC_PERIOD_S",
    "SCALE_IN_DATAPOINTS",
    "SCALE_IN_MARGIN",
    "SCALE_OUT_DATAPOINTS",
    "AdjustmentType",
    "AlarmFiring",
    "ComparisonOperator",
    "Datapoint",
    "Decision",
    "Direction",
    "MetricAggregation",
    "NotScaledReason",
    "Policy",
    "StepAdjustment",
    "StepAlarm",
    "StepScalingPolicy",
    "Suspension",
    "TargetTrackingPolicy",
    "adjusted_capacity",
    "alarm_cause",
    "decide",
    "metric_key",
    "per_target_per_minute",
    "round_percent_change",
]

ECS_CPU_UTILIZATION = "ECSServiceAverageCPUUtilization"
ECS_MEMORY_UTILIZATION = "ECSServiceAverageMemoryUtilization"
ALB_REQUEST_COUNT_PER_TARGET = "ALBRequestCountPerTarget"

METRIC_PERIOD_S = 60.0
DEFAULT_COOLDOWN_S = 300.0  # ScaleOutCooldown / ScaleInCooldown / Cooldown for ECS services [CFN-TT]
SCALE_OUT_DATAPOINTS = 3  # AlarmHigh: 3 of 3 one-minute datapoints (observed, spec §4.3)
SCALE_IN_DATAPOINTS = 15  # AlarmLow: 15 of 15 (observed, spec §4.3)
SCALE_IN_MARGIN = 0.10  # scale in only below 90 % of the target ("usually more than 10% lower")
# Capacity arithmetic is rounded to this many decimals before ceil(), so that 10 × 0.55 / 0.5
# (10.000000000000002 in binary floating point) is 11, not 12.
_DECIMALS = 9

Datapoint = tuple[float, float]


class AdjustmentType(enum.Enum):
    CHANGE_IN_CAPACITY = "ChangeInCapacity"
    EXACT_CAPACITY = "ExactCapacity"
    PERCENT_CHANGE_IN_CAPACITY = "PercentChangeInCapacity"


class MetricAggregation(enum.Enum):
    AVERAGE = "Average"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"


class ComparisonOperator(enum.Enum):
    GREATER_THAN_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER_THAN = "GreaterThanThreshold"
    LESS_THAN = "LessThanThreshold"
    LESS_THAN_OR_EQUAL = "LessThanOrEqualToThreshold"

    @property
    def is_upper(self) -> bool:
        """True for alarms that breach above their threshold."""
        return self in (ComparisonOperator.GREATER_THAN_OR_EQUAL, ComparisonOperator.GREATER_THAN)

    def breaches(self, value: float, threshold: float) -> bool:
        return {
            ComparisonOperator.GREATER_THAN_OR_EQUAL: value >= threshold,
            ComparisonOperator.GREATER_THAN: value > threshold,
            ComparisonOperator.LESS_THAN: value < threshold,
            ComparisonOperator.LESS_THAN_OR_EQUAL: value <= threshold,
        }[self]


class Direction(enum.Enum):
    OUT = "out"
    IN = "in"


class NotScaledReason(enum.Enum):
    """Why an alarm fired but capacity stays (DescribeScalingActivities' NotScaledReasons codes)."""

    ALREADY_AT_MAX_CAPACITY = "AlreadyAtMaxCapacity"
    ALREADY_AT_MIN_CAPACITY = "AlreadyAtMinCapacity"
    ALREADY_AT_DESIRED_CAPACITY = "AlreadyAtDesiredCapacity"


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """A TargetTrackingScaling policy on one predefined metric (datapoints under ``metric``)."""

    name: str
    metric: str
    target_value: float
    scale_out_cooldown_s: float = DEFAULT_COOLDOWN_S
    scale_in_cooldown_s: float = DEFAULT_COOLDOWN_S
    disable_scale_in: bool = False
    alarm_high: str = ""  # AlarmName of the managed high alarm, for the activity's cause
    alarm_low: str = ""
    period_s: float = METRIC_PERIOD_S
    scale_out_datapoints: int = SCALE_OUT_DATAPOINTS
    scale_in_datapoints: int = SCALE_IN_DATAPOINTS
    scale_in_margin: float = SCALE_IN_MARGIN


@dataclass(frozen=True)
class StepAdjustment:
    """Bounds relative to the alarm threshold; None is −∞ (lower) or +∞ (upper)."""

    scaling_adjustment: int
    lower_bound: float | None = None
    upper_bound: float | None = None


@dataclass(frozen=True)
class StepAlarm:
    """The CloudWatch-style alarm that invokes a step scaling policy."""

    name: str
    metric: str
    threshold: float
    comparison: ComparisonOperator
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None  # None: all evaluation_periods
    period_s: float = METRIC_PERIOD_S


@dataclass(frozen=True)
class AlarmFiring:
    """A CloudWatch alarm in ALARM whose AlarmActions name a step scaling policy (core/alarms.py
    evaluated it): ``values`` are the datapoints it evaluated, oldest first, aggregated by the
    policy's MetricAggregationType to pick the step."""

    name: str
    threshold: float
    upper: bool  # breaches above its threshold
    values: tuple[float, ...]


@dataclass(frozen=True)
class StepScalingPolicy:
    name: str
    adjustment_type: AdjustmentType
    step_adjustments: tuple[StepAdjustment, ...]
    alarm: StepAlarm | None = None  # no alarm bound: the policy never fires
    firing: AlarmFiring | None = None  # a CloudWatch alarm invoking it now (takes precedence over ``alarm``)
    min_adjustment_magnitude: int | None = None
    cooldown_s: float = DEFAULT_COOLDOWN_S
    aggregation: MetricAggregation = MetricAggregation.AVERAGE


Policy = TargetTrackingPolicy | StepScalingPolicy


@dataclass(frozen=True)
class Suspension:
    """The scalable target's SuspendedState (DynamicScalingIn/OutSuspended)."""

    scale_in: bool = False
    scale_out: bool = False


@dataclass(frozen=True)
class Decision:
    """What the scaler should do now.

    ``desired`` is the new desired count; ``reason`` AWS's cause text ("monitor alarm X in state
    ALARM triggered policy Y"). With ``not_scaled_reason`` set, an alarm fired but capacity stays
    at ``desired`` (AWS records a "not scaled" activity); :attr:`scales` is False then.
    ``base_capacity`` is the capacity the computation started from: after a scale-out, pass it back
    as ``scale_out_base`` while the scale-out cooldown lasts.
    """

    desired: int
    reason: str
    policy_name: str
    direction: Direction
    alarm_name: str
    base_capacity: int
    not_scaled_reason: NotScaledReason | None = None

    @property
    def scales(self) -> bool:
        return self.not_scaled_reason is None


# --------------------------------------------------------------------------- metric helpers


def metric_key(metric_type: str, resource_label: str | None = None) -> str:
    """The key datapoints of a predefined metric are filed under (label for ALB request counts)."""
    return f"{metric_type}/{resource_label}" if resource_label else metric_type


def per_target_per_minute(count: float, targets: int, period_s: float) -> float:
    """``count`` requests in one ``period_s`` period over ``targets`` targets, as requests per
    target per minute (the unit of ALBRequestCountPerTarget's TargetValue).

    With no targets the whole count is one target's share: demand with nothing to serve it reads
    as high load, which is what lets a service scale out from zero.
    """
    if period_s <= 0:
        raise ValueError(f"period_s must be positive, got {period_s}")
    return count / max(targets, 1) * (60.0 / period_s)


def alarm_cause(alarm_name: str, policy_name: str) -> str:
    """AWS's activity cause text for an alarm that triggered a policy."""
    return f"monitor alarm {alarm_name} in state ALARM triggered policy {policy_name}"


def _window(points: Sequence[Datapoint], now: float, count: int, period_s: float) -> list[float] | None:
    """The values of the last ``count`` datapoints at or before ``now``, oldest first; None
    (INSUFFICIENT_DATA) unless they are consecutive (span under ``count`` periods) and fresh (the
    newest at most two periods old). Non-finite values count as missing."""
    usable = sorted((t, v) for t, v in points if t <= now and math.isfinite(v))
    if count < 1 or len(usable) < count:
        return None
    last = usable[-count:]
    if now - last[-1][0] > 2 * period_s:
        return None
    if last[-1][0] - last[0][0] > (count - 0.5) * period_s:
        return None
    return [v for _, v in last]


def _ceil(value: Fraction) -> int:
    rounded: Fraction = round(value, _DECIMALS)
    return math.ceil(rounded)


# --------------------------------------------------------------------------- step arithmetic


def round_percent_change(raw: float | Fraction) -> int:
    """AWS's rounding of a PercentChangeInCapacity result [AAS-STEP]: "Values greater than 1 are
    rounded down (12.7 → 12). Values between 0 and 1 are rounded to 1 (.67 → 1). Values between 0
    and -1 are rounded to -1 (-.58 → -1). Values less than -1 are rounded up (-6.67 → -6)."
    So: toward zero, but never to zero."""
    if raw >= 1:
        return math.floor(raw)
    if raw > 0:
        return 1
    if raw == 0:
        return 0
    if raw > -1:
        return -1
    return math.ceil(raw)


def adjusted_capacity(
    adjustment_type: AdjustmentType, adjustment: int, capacity: int, min_adjustment_magnitude: int | None = None
) -> int:
    """The capacity a step adjustment asks for, from ``capacity`` (unclamped).

    ``MinAdjustmentMagnitude`` ("the minimum value to scale by" for PercentChangeInCapacity
    [BC]) raises a non-zero percent change to at least that many tasks, either direction.
    """
    if adjustment_type is AdjustmentType.CHANGE_IN_CAPACITY:
        return capacity + adjustment
    if adjustment_type is AdjustmentType.EXACT_CAPACITY:
        return adjustment
    change = round_percent_change(Fraction(capacity * adjustment, 100))
    if min_adjustment_magnitude and change and abs(change) < min_adjustment_magnitude:
        change = min_adjustment_magnitude if change > 0 else -min_adjustment_magnitude
    return capacity + change


def _step_for(steps: Sequence[StepAdjustment], difference: float, upper_alarm: bool) -> StepAdjustment | None:
    for step in steps:
        low = -math.inf if step.lower_bound is None else step.lower_bound
        high = math.inf if step.upper_bound is None else step.upper_bound
        inside = low <= difference < high if upper_alarm else low < difference <= high
        if inside:
            return step
    return None


def _aggregate(aggregation: MetricAggregation, values: list[float]) -> float:
    if aggregation is MetricAggregation.MINIMUM:
        return min(values)
    if aggregation is MetricAggregation.MAXIMUM:
        return max(values)
    return sum(values) / len(values)


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class _Proposal:
    capacity: int
    policy: str
    alarm: str
    base: int
    in_cooldown: bool = False


def decide(
    policies: Sequence[Policy],
    current_capacity: int,
    min_capacity: int,
    max_capacity: int,
    metrics: Mapping[str, Sequence[Datapoint]],
    last_scale_out_at: float | None,
    last_scale_in_at: float | None,
    now: float,
    deployment_in_progress: bool = False,
    *,
    desired_capacity: int | None = None,
    scale_out_base: int | None = None,
    suspended: Suspension = Suspension(),
) -> Decision | None:
    """The scaling action the target's policies call for at ``now``, or None.

    Args:
        policies: the target's policies, in creation order (ties go to the earlier one).
        current_capacity: RUNNING tasks (the starting point of every computation [ECS-AS]).
        min_capacity, max_capacity: the scalable target's bounds.
        metrics: metric key (:func:`metric_key`, or a step alarm's ``metric``) -> datapoints.
        last_scale_out_at, last_scale_in_at: when policy-driven scaling last moved the desired
            count that way (None: never); the cooldowns count from them.
        deployment_in_progress: an ECS deployment is rolling; scale-in waits for it.
        desired_capacity: the service's desiredCount now (default ``current_capacity``).
        scale_out_base: ``Decision.base_capacity`` of the last scale-out, used while its
            cooldown lasts.
        suspended: the target's SuspendedState.

    Returns:
        A :class:`Decision` (check :attr:`Decision.scales`), or None when no alarm fires or a
        cooldown, suspension or deployment holds the action back.
    """
    desired = current_capacity if desired_capacity is None else desired_capacity
    out: list[_Proposal] = []
    step_in: list[_Proposal] = []
    tt_in: list[_Proposal] = []
    tt_all_ready = True
    tt_voters = 0

    def out_cooldown(cooldown_s: float) -> bool:
        return last_scale_out_at is not None and now < last_scale_out_at + cooldown_s

    def in_cooldown(cooldown_s: float) -> bool:
        # A scale-out after the last scale-in ends the scale-in cooldown [AAS-TT].
        if last_scale_in_at is None or (last_scale_out_at is not None and last_scale_out_at >= last_scale_in_at):
            return False
        return now < last_scale_in_at + cooldown_s

    def out_base(cooldown_s: float) -> tuple[int, bool]:
        cooling = out_cooldown(cooldown_s)
        if cooling and scale_out_base is not None:
            return scale_out_base, True
        return current_capacity, cooling

    for policy in policies:
        if isinstance(policy, TargetTrackingPolicy):
            points = metrics.get(policy.metric, ())
            target = policy.target_value
            high_n = 1 if current_capacity == 0 else policy.scale_out_datapoints
            high = _window(points, now, high_n, policy.period_s)
            if target > 0 and high is not None and all(v > target for v in high):
                base, cooling = out_base(policy.scale_out_cooldown_s)
                capacity = max(1, _ceil(Fraction(base) * Fraction(high[-1]) / Fraction(target)))
                out.append(_Proposal(capacity, policy.name, policy.alarm_high or f"{policy.name}-AlarmHigh", base, cooling))
                tt_all_ready = False
                continue
            if policy.disable_scale_in:
                continue
            tt_voters += 1
            low = _window(points, now, policy.scale_in_datapoints, policy.period_s)
            threshold = target * (1 - policy.scale_in_margin)
            if target <= 0 or low is None or not all(v < threshold for v in low):
                tt_all_ready = False
                continue
            if in_cooldown(policy.scale_in_cooldown_s):
                tt_all_ready = False
                continue
            capacity = _ceil(Fraction(current_capacity) * Fraction(max(low)) / Fraction(target))
            tt_in.append(_Proposal(capacity, policy.name, policy.alarm_low or f"{policy.name}-AlarmLow", current_capacity))
        else:
            fired = _fired(policy, metrics, now)
            if fired is None:
                continue
            alarm_name, threshold, upper, window = fired
            step = _step_for(policy.step_adjustments, _aggregate(policy.aggregation, window) - threshold, upper)
            if step is None:
                continue
            if policy.adjustment_type is AdjustmentType.EXACT_CAPACITY:
                outward = step.scaling_adjustment > desired
                if step.scaling_adjustment == desired:
                    continue
            else:
                outward = step.scaling_adjustment > 0
                if step.scaling_adjustment == 0:
                    continue
            if outward:
                base, cooling = out_base(policy.cooldown_s)
                capacity = adjusted_capacity(
                    policy.adjustment_type, step.scaling_adjustment, base, policy.min_adjustment_magnitude
                )
                out.append(_Proposal(capacity, policy.name, alarm_name, base, cooling))
            elif not in_cooldown(policy.cooldown_s):
                capacity = adjusted_capacity(
                    policy.adjustment_type, step.scaling_adjustment, current_capacity, policy.min_adjustment_magnitude
                )
                step_in.append(_Proposal(capacity, policy.name, alarm_name, current_capacity))

    if out:
        if suspended.scale_out:
            return None
        return _scale_out(out, desired, min_capacity, max_capacity)
    if suspended.scale_in or deployment_in_progress:
        return None
    candidates = step_in + (tt_in if tt_all_ready and tt_voters else [])
    if not candidates:
        return None
    return _scale_in(candidates, desired, min_capacity, max_capacity)


def _fired(
    policy: StepScalingPolicy, metrics: Mapping[str, Sequence[Datapoint]], now: float
) -> tuple[str, float, bool, list[float]] | None:
    """(alarm name, threshold, upper, values) of the alarm invoking a step policy now, or None."""
    if policy.firing is not None:
        if not policy.firing.values:
            return None  # in ALARM without a datapoint (missing data treated as breaching): no step to pick
        return policy.firing.name, policy.firing.threshold, policy.firing.upper, list(policy.firing.values)
    alarm = policy.alarm
    if alarm is None:
        return None
    window = _window(metrics.get(alarm.metric, ()), now, alarm.evaluation_periods, alarm.period_s)
    if window is None:
        return None
    needed = alarm.datapoints_to_alarm or alarm.evaluation_periods
    if sum(alarm.comparison.breaches(v, alarm.threshold) for v in window) < needed:
        return None
    return alarm.name, alarm.threshold, alarm.comparison.is_upper, window


def _scale_out(proposals: list[_Proposal], desired: int, low: int, high: int) -> Decision | None:
    clamped = [(min(max(p.capacity, low), high), p) for p in proposals]
    best_capacity, best = max(clamped, key=lambda item: item[0])  # max() keeps the first of equals
    if best_capacity > desired:
        return _decision(best, best_capacity, Direction.OUT)
    if desired >= high:
        return _decision(best, desired, Direction.OUT, NotScaledReason.ALREADY_AT_MAX_CAPACITY)
    if all(p.in_cooldown for _, p in clamped):
        return None  # not larger than the scale-out whose cooldown is running: wait [AAS-TT]
    return _decision(best, desired, Direction.OUT, NotScaledReason.ALREADY_AT_DESIRED_CAPACITY)


def _scale_in(proposals: list[_Proposal], desired: int, low: int, high: int) -> Decision | None:
    clamped = [(max(min(p.capacity, high), low), p) for p in proposals]
    best_capacity, best = max(clamped, key=lambda item: item[0])  # the largest capacity wins
    if best_capacity < desired:
        return _decision(best, best_capacity, Direction.IN)
    if desired <= low:
        return _decision(best, desired, Direction.IN, NotScaledReason.ALREADY_AT_MIN_CAPACITY)
    return _decision(best, desired, Direction.IN, NotScaledReason.ALREADY_AT_DESIRED_CAPACITY)


def _decision(p: _Proposal, desired: int, direction: Direction, not_scaled: NotScaledReason | None = None) -> Decision:
    return Decision(desired, alarm_cause(p.alarm, p.policy), p.policy, direction, p.alarm, p.base, not_scaled)
