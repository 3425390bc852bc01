"""CloudWatch statistics over stored buckets: pure functions, no store and no clock.

Stored buckets (1 or 60 seconds) are merged into the periods a query asks for; a period's
statistic set is the merge of its buckets' sets (sample counts and sums add, minimum of the
minima, maximum of the maxima), exactly as CloudWatch aggregates statistic sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from portside.core import metric_distribution
from portside.core.metric_data import Datapoint, StatisticSet

#: The statistics GetMetricStatistics' ``Statistics`` names, and GetMetricData's ``Stat`` accepts.
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
#: pNN or pNN.NN: a percentile (ExtendedStatistics, or a ``Stat``).
PERCENTILE_RE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
#: Periods below a minute a high-resolution metric may be read at.
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)


@dataclass(frozen=True)
class PeriodStats:
    """One period of a query: its start (epoch seconds), the merged set, the unit seen."""

    ts: int
    stats: StatisticSet
    unit: str


def merge(a: StatisticSet, b: StatisticSet) -> StatisticSet:
    return StatisticSet(a.sample_count + b.sample_count, a.sum + b.sum, min(a.minimum, b.minimum), max(a.maximum, b.maximum))


def period_problem(period: int) -> str | None:
    """Why ``period`` is not one CloudWatch accepts (1, 5, 10, 20, 30 or a multiple of 60), or None."""
    if period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0):
        return None
    return "must be 1, 5, 10, 20, 30, or any multiple of 60"


def aggregate(points: Iterable[Datapoint], period: int, unit: str | None = None) -> list[PeriodStats]:
    """Merge buckets into periods aligned to multiples of ``period`` (epoch seconds), oldest first.

    ``unit``: keep only buckets recorded in that unit (GetMetricStatistics' ``Unit`` filter).
    """
    merged: dict[int, PeriodStats] = {}
    for point in points:
        if unit is not None and point.unit != unit:
            continue
        ts = point.ts // period * period
        seen = merged.get(ts)
        merged[ts] = PeriodStats(ts, point.stats if seen is None else merge(seen.stats, point.stats), point.unit)
    return [merged[ts] for ts in sorted(merged)]


def period_distributions(buckets: Mapping[int, Mapping[int, float]], period: int) -> dict[int, dict[int, float]]:
    """Time buckets' distributions (start -> value bucket -> count) merged into periods like ``aggregate``."""
    merged: dict[int, dict[int, float]] = {}
    for ts, counts in buckets.items():
        metric_distribution.merge(merged.setdefault(ts // period * period, {}), counts)
    return merged


def percentile_of(name: str, stats: StatisticSet, counts: Mapping[int, float] | None) -> float | None:
    """A ``pNN`` statistic of a period (None: the period holds no distribution, only statistic sets)."""
    if not counts:
        return None
    return metric_distribution.percentile(counts, float(name[1:]), stats.minimum, stats.maximum)


def statistic(stats: StatisticSet, name: str) -> float:
    """One of ``STATISTICS`` of a set."""
    if name == "SampleCount":
        return stats.sample_count
    if name == "Sum":
        return stats.sum
    if name == "Minimum":
        return stats.minimum
    if name == "Maximum":
        return stats.maximum
    if name == "Average":
        return stats.sum / stats.sample_count if stats.sample_count else 0.0
    raise ValueError(f"unknown statistic {name!r}")


def statistic_of_values(values: list[float], counts: list[float] | None) -> StatisticSet | None:
    """The statistic set of PutMetricData's ``Values`` (each seen ``Counts[i]`` times; 1 without Counts).

    None when every count is zero (nothing to record).
    """
    weights = counts if counts is not None else [1.0] * len(values)
    pairs = [(v, c) for v, c in zip(values, weights, strict=True) if c > 0]
    if not pairs:
        return None
    return StatisticSet(
        sum(c for _, c in pairs), sum(v * c for v, c in pairs), min(v for v, _ in pairs), max(v for v, _ in pairs)
    )
