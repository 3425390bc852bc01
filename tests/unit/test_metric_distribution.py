"""Percentiles from logarithmic buckets (core/metric_distribution.py): within about 1 % of the exact ones."""

from __future__ import annotations

import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core import metric_distribution as md


def exact(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e9), min_size=1, max_size=200), st.sampled_from([50.0, 90.0, 99.0, 99.9]))
def test_a_percentile_is_within_two_percent_of_the_exact_one(values: list[float], p: float) -> None:
    got = md.percentile(md.distribution_of(values), p, min(values), max(values))
    assert got is not None
    assert abs(got - exact(values, p)) <= 0.02 * exact(values, p) + 1e-12


def test_signs_zero_and_extremes_keep_their_order() -> None:
    values = [-5.0, -0.5, 0.0, 0.5, 5.0, sys.float_info.max, -sys.float_info.max, 5e-324]
    keys = [md.bucket_of(v) for v in values]
    assert len(set(keys)) == len(values)
    assert sorted(values) == sorted(values, key=lambda v: md.value_of(md.bucket_of(v)))
    assert md.value_of(md.ZERO) == 0.0
    assert md.percentile({}, 99, 0, 1) is None


def test_counts_weigh_values_and_zero_counts_are_left_out() -> None:
    buckets = md.distribution_of([1.0, 100.0, 7.0], [99.0, 1.0, 0.0])
    assert sum(buckets.values()) == 100.0 and md.bucket_of(7.0) not in buckets
    assert abs(md.percentile(buckets, 99, 1.0, 100.0) - 1.0) < 0.02  # type: ignore[operator]
    assert md.percentile(buckets, 100, 1.0, 100.0) == 100.0
