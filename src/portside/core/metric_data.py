"""CloudWatch's statistic sets and stored datapoints: the values metrics, alarms and usage share.

A statistic set is what AWS keeps of the values in one period: sample count, sum, minimum and
maximum. A datapoint is one stored bucket of ``resolution`` seconds starting at ``ts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class StatisticSet:
    sample_count: float
    sum: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, value: float) -> StatisticSet:
        return cls(1.0, value, value, value)


@dataclass(frozen=True)
class Datapoint:
    """One stored bucket: ``ts`` is its start (epoch seconds), ``resolution`` its length."""

    ts: int
    resolution: int
    unit: str
    stats: StatisticSet


def statistic_sets(values: Iterable[float]) -> StatisticSet | None:
    """The statistic set of some values (None for none)."""
    items = list(values)
    if not items:
        return None
    return StatisticSet(float(len(items)), float(sum(items)), float(min(items)), float(max(items)))
