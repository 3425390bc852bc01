"""Distributions of metric values, for percentiles (``p99``): counts per logarithmic bucket.

A value falls in the bucket ``floor(log(|v|) / log(GROWTH))``, so each bucket spans 2 % of its
values and a percentile read back is within about 1 % of the true one (the bucket's geometric
middle, clamped into the period's minimum and maximum, which are exact). Bucket keys are integers
that keep the sign: ``2*i`` for a positive value, ``2*i + 1`` for a negative one, ``ZERO`` for 0.
Merging distributions adds their counts, so many writers may feed one period, as with statistic sets.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping

GROWTH = 1.02
INV_LOG_GROWTH = 1.0 / math.log(GROWTH)
#: The key of exact zeros (beyond every key a finite double gives).
ZERO = 1 << 40


def bucket_of(value: float) -> int:
    if value == 0:
        return ZERO
    index = math.floor(math.log(abs(value)) * INV_LOG_GROWTH)
    return 2 * index + (1 if value < 0 else 0)


def value_of(bucket: int) -> float:
    """The bucket's representative value (its geometric middle)."""
    if bucket == ZERO:
        return 0.0
    sign = -1.0 if bucket & 1 else 1.0
    try:
        return sign * GROWTH ** ((bucket >> 1) + 0.5)
    except OverflowError:
        return sign * sys.float_info.max


def distribution_of(values: Iterable[float], counts: Iterable[float] | None = None) -> dict[int, float]:
    """Counts per bucket of ``values`` (each seen ``counts[i]`` times; once without counts)."""
    weights = counts if counts is not None else (1.0 for _ in iter(int, 1))
    buckets: dict[int, float] = {}
    for value, count in zip(values, weights):
        if count > 0:
            key = bucket_of(value)
            buckets[key] = buckets.get(key, 0.0) + count
    return buckets


def merge(into: dict[int, float], more: Mapping[int, float]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0.0) + count


def percentile(buckets: Mapping[int, float], p: float, minimum: float, maximum: float) -> float | None:
    """The ``p``-th percentile (0..100) of a distribution, clamped into [minimum, maximum]; None if empty."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    if p >= 100:
        return maximum
    if p <= 0:
        return minimum
    rank = p / 100.0 * total
    seen = 0.0
    ordered = sorted(buckets.items(), key=lambda item: value_of(item[0]))
    for key, count in ordered:
        seen += count
        if seen >= rank:
            return min(max(value_of(key), minimum), maximum)
    return maximum
