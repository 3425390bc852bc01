"""CloudWatch metric alarm evaluation: datapoints in, alarm state out (pure: no clock, no I/O).

The alarm loop (``control/controllers/alarms.py``) reads a metric's stored buckets, calls
:func:`evaluate` with ``now`` and the alarm's current state, and stores what comes back. Calling it
again with the same inputs gives the same answer.

Theory of operation (after CloudWatch's "Alarm evaluation" and "Configuring how CloudWatch alarms
treat missing data")
-----------------------------------------------------------------------------------------------
- **Periods** are aligned on multiples of ``Period`` seconds since the epoch. Only complete
  periods count: at ``now`` the newest evaluated period is the one that ended at or before
  ``now``. A period's value is the alarm's statistic over every stored bucket that starts in it
  (buckets are statistic sets, so SampleCount, Average, Sum, Minimum and Maximum are exact); a
  period with no bucket is **missing**. A percentile (``pNN``, ExtendedStatistic) comes from the
  buckets' value distributions; a period holding only statistic sets has none and is missing.
  With ``EvaluateLowSampleCountPercentile: ignore`` a percentile over fewer samples than
  CloudWatch calls significant (10/(1-p), or 10/p below p50) keeps the alarm's state.
- **Evaluation range**: CloudWatch "attempts to retrieve a higher number of data points than the
  number specified as Evaluation Periods"; portside looks back ``EvaluationPeriods +
  EXTRA_PERIODS`` periods (AWS does not publish its number; its documented example shows 5
  datapoints for 3 evaluation periods, which is what 2 extra gives).
- **Enough real data** (at least ``EvaluationPeriods`` values in the range): the newest
  ``EvaluationPeriods`` values are evaluated and missing-data treatment plays no part. The alarm
  is ALARM when at least ``DatapointsToAlarm`` of them breach, else OK.
- **Some real data, fewer than EvaluationPeriods**: every real value in the range is evaluated and
  missing values fill the rest, as few as possible: ``breaching`` fills with breaching values,
  ``notBreaching`` with non-breaching ones; ``missing`` and ``ignore`` evaluate the real values
  alone, so ALARM needs ``min(DatapointsToAlarm, real values)`` of them to breach (one breaching
  value with everything else missing is ALARM, as in AWS's table).
- **No real data in the range**: ``missing`` is INSUFFICIENT_DATA, ``ignore`` keeps the current
  state, ``breaching`` is ALARM, ``notBreaching`` is OK.

StateReason follows CloudWatch's wording ("Threshold Crossed: 2 out of the last 3 datapoints [...]
were greater than the threshold (50.0) (minimum 2 datapoints for OK -> ALARM transition).") and
StateReasonData is CloudWatch's JSON document (version 1.0, queryDate, startDate, statistic,
period, recentDatapoints, threshold, evaluatedDatapoints).

The ``breach_values`` of an evaluation (the real values evaluated, oldest first) are what an
Application Auto Scaling step policy aggregates to pick its step.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from portside.core import metric_distribution

__all__ = [
    "ANOMALY_DETECTION_OPERATORS",
    "EXTRA_PERIODS",
    "PERCENTILE",
    "STATISTICS",
    "AlarmRule",
    "AlarmState",
    "Bucket",
    "Comparison",
    "Evaluation",
    "MissingData",
    "evaluate",
    "period_values",
    "to_json",
]

#: Periods looked back beyond EvaluationPeriods for real datapoints (portside's choice).
EXTRA_PERIODS = 2
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
#: An ExtendedStatistic: pNN or pNN.NN, a percentile read from the stored value distributions.
PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
#: Operators of anomaly-detection alarms (they need a band from Metrics; portside has none).
ANOMALY_DETECTION_OPERATORS = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)


class AlarmState(enum.Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class MissingData(enum.Enum):
    MISSING = "missing"
    IGNORE = "ignore"
    BREACHING = "breaching"
    NOT_BREACHING = "notBreaching"


class Comparison(enum.Enum):
    GREATER_THAN_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER_THAN = "GreaterThanThreshold"
    LESS_THAN = "LessThanThreshold"
    LESS_THAN_OR_EQUAL = "LessThanOrEqualToThreshold"

    def breaches(self, value: float, threshold: float) -> bool:
        if self is Comparison.GREATER_THAN_OR_EQUAL:
            return value >= threshold
        if self is Comparison.GREATER_THAN:
            return value > threshold
        if self is Comparison.LESS_THAN:
            return value < threshold
        return value <= threshold

    @property
    def is_upper(self) -> bool:
        """True for alarms that breach above their threshold."""
        return self in (Comparison.GREATER_THAN_OR_EQUAL, Comparison.GREATER_THAN)

    @property
    def words(self) -> str:
        """The phrase CloudWatch's StateReason uses ("greater than or equal to")."""
        return {
            Comparison.GREATER_THAN_OR_EQUAL: "greater than or equal to",
            Comparison.GREATER_THAN: "greater than",
            Comparison.LESS_THAN: "less than",
            Comparison.LESS_THAN_OR_EQUAL: "less than or equal to",
        }[self]


@dataclass(frozen=True)
class AlarmRule:
    """What PutMetricAlarm said about when the alarm breaches."""

    statistic: str
    period_s: int
    evaluation_periods: int
    threshold: float
    comparison: Comparison
    datapoints_to_alarm: int | None = None  # None: EvaluationPeriods
    treat_missing: MissingData = MissingData.MISSING
    #: EvaluateLowSampleCountPercentile "ignore": a percentile over too few samples keeps the state
    ignore_low_sample_count: bool = False

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS and not PERCENTILE.match(self.statistic):
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} or pNN, got {self.statistic!r}")
        if self.period_s < 1:
            raise ValueError(f"period_s must be at least 1, got {self.period_s}")
        if self.evaluation_periods < 1:
            raise ValueError(f"evaluation_periods must be at least 1, got {self.evaluation_periods}")
        if not 1 <= self.needed <= self.evaluation_periods:
            raise ValueError(f"datapoints_to_alarm must be in 1..{self.evaluation_periods}, got {self.datapoints_to_alarm}")

    @property
    def percentile(self) -> float | None:
        """The percentile (0..100) of a pNN statistic, else None."""
        return float(self.statistic[1:]) if PERCENTILE.match(self.statistic) else None

    def significant(self, samples: float) -> bool:
        """Whether a percentile over ``samples`` values is statistically significant (CloudWatch's
        rule: at least 10/(1-p) samples for p of 0.5 and above, 10/p below)."""
        p = self.percentile
        if p is None or p in (0.0, 100.0):
            return True
        fraction = p / 100
        needed = 10 / (1 - fraction) if fraction >= 0.5 else 10 / fraction
        return samples >= round(needed, 6)  # 10 / (1 - 0.9) is 100.00000000000001 in binary floating point

    @property
    def needed(self) -> int:
        """DatapointsToAlarm (M of N)."""
        return self.evaluation_periods if self.datapoints_to_alarm is None else self.datapoints_to_alarm


@dataclass(frozen=True)
class Bucket:
    """One stored statistic set starting at ``ts`` (epoch seconds); ``counts`` its value
    distribution (value bucket -> count, core/metric_distribution.py) when one was recorded."""

    ts: float
    sample_count: float
    sum: float
    minimum: float
    maximum: float
    counts: Mapping[int, float] | None = None


@dataclass(frozen=True)
class Evaluation:
    state: AlarmState
    reason: str
    reason_data: dict[str, Any]
    breach_values: tuple[float, ...] = field(default=())  # real values evaluated, oldest first


def _statistic(statistic: str, buckets: Sequence[Bucket]) -> float | None:
    count = sum(b.sample_count for b in buckets)
    if not buckets or count <= 0:
        return None
    if PERCENTILE.match(statistic):  # only from distributions: statistic sets alone have no percentiles
        merged: dict[int, float] = {}
        for b in buckets:
            if b.counts:
                metric_distribution.merge(merged, b.counts)
        lowest, highest = min(b.minimum for b in buckets), max(b.maximum for b in buckets)
        return metric_distribution.percentile(merged, float(statistic[1:]), lowest, highest) if merged else None
    if statistic == "SampleCount":
        return count
    if statistic == "Sum":
        return sum(b.sum for b in buckets)
    if statistic == "Average":
        return sum(b.sum for b in buckets) / count
    if statistic == "Minimum":
        return min(b.minimum for b in buckets)
    return max(b.maximum for b in buckets)


def period_values(rule: AlarmRule, buckets: Sequence[Bucket], now: float) -> list[tuple[int, float | None, float]]:
    """(period start, statistic value or None when missing, sample count) for every period of the
    evaluation range, oldest first, ending with the newest period complete at ``now``."""
    period = rule.period_s
    end = int(now // period) * period  # start of the period still in progress
    count = rule.evaluation_periods + EXTRA_PERIODS
    out: list[tuple[int, float | None, float]] = []
    for k in range(count, 0, -1):
        start = end - k * period
        inside = [b for b in buckets if start <= b.ts < start + period and math.isfinite(b.sum)]
        value = _statistic(rule.statistic, inside)
        out.append((start, value, sum(b.sample_count for b in inside)))
    return out


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluate(rule: AlarmRule, buckets: Sequence[Bucket], now: float, current: AlarmState) -> Evaluation:
    """The alarm's state at ``now`` from its metric's ``buckets`` (see the module's theory)."""
    periods = period_values(rule, buckets, now)
    real = [(ts, v, n) for ts, v, n in periods if v is not None]
    n, m = rule.evaluation_periods, rule.needed
    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(periods[0][0]),
        "statistic": rule.statistic,
        "period": rule.period_s,
        "recentDatapoints": [],
        "threshold": rule.threshold,
        "evaluatedDatapoints": [],
    }
    evaluated = real[-n:]
    values = [float(v) for _, v, _ in evaluated if v is not None]
    data["recentDatapoints"] = values
    data["evaluatedDatapoints"] = [
        {"timestamp": _iso(ts), "sampleCount": count, "value": float(v)} for ts, v, count in reversed(evaluated) if v is not None
    ]
    if rule.ignore_low_sample_count and any(not rule.significant(count) for _, _, count in evaluated):
        reason = ("The percentile was evaluated over too few samples to be significant; the alarm keeps its "
                  "state (EvaluateLowSampleCountPercentile: ignore).")
        return Evaluation(current, reason, data)
    breaching = sum(1 for v in values if rule.comparison.breaches(v, rule.threshold))
    fill = n - len(values) if len(values) < n else 0
    missing = rule.treat_missing
    if not values:
        if missing is MissingData.MISSING:
            reason = f"Insufficient Data: {_plural(n, 'datapoint')} {'was' if n == 1 else 'were'} unknown."
            return Evaluation(AlarmState.INSUFFICIENT_DATA, reason, data)
        if missing is MissingData.IGNORE:
            reason = f"No datapoints were received for {_plural(n, 'period')}; the alarm keeps its state (missing data is ignored)."
            return Evaluation(current, reason, data)
        treated = "Breaching" if missing is MissingData.BREACHING else "NonBreaching"
        state = AlarmState.ALARM if missing is MissingData.BREACHING else AlarmState.OK
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
            f"{_plural(n, 'missing datapoint')} {'was' if n == 1 else 'were'} treated as [{treated}]."
        )
        return Evaluation(state, reason, data)
    if missing is MissingData.BREACHING:
        alarm = breaching + fill >= m
    elif missing is MissingData.NOT_BREACHING:
        alarm = breaching >= m
    else:  # missing, ignore: the real values alone
        alarm = breaching >= min(m, len(values))
    state = AlarmState.ALARM if alarm else AlarmState.OK
    shown = ", ".join(f"{v} ({_stamp(ts)})" for ts, v, _ in reversed(evaluated))
    counted = breaching if alarm else len(values) - breaching
    verb = "was" if counted == 1 else "were"
    negation = "" if alarm else "not "
    transition = (
        f"minimum {_plural(m, 'datapoint')} for OK -> ALARM transition"
        if alarm
        else f"minimum {_plural(n - m + 1, 'datapoint')} for ALARM -> OK transition"
    )
    reason = (
        f"Threshold Crossed: {counted} out of the last {len(values)} datapoints [{shown}] {verb} "
        f"{negation}{rule.comparison.words} the threshold ({float(rule.threshold)}) ({transition})."
    )
    if fill:
        filled_as = {MissingData.BREACHING: "Breaching", MissingData.NOT_BREACHING: "NonBreaching"}.get(missing)
        if filled_as:
            were = "was" if fill == 1 else "were"
            reason = reason[:-1] + f"; {_plural(fill, 'missing datapoint')} {were} treated as [{filled_as}]."
    return Evaluation(state, reason, data, tuple(values))


def to_json(data: dict[str, Any]) -> str:
    """StateReasonData as CloudWatch shows it (a JSON string)."""
    return json.dumps(data, separators=(",", ":"))
