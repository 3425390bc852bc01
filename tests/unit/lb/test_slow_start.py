"""portside.core.lb.slow_start: the linear ramp and when a target enters it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.slow_start import SLOW_START_FLOOR, enters_slow_start, in_slow_start, slow_start_weight


@pytest.mark.parametrize(
    ("elapsed", "duration", "expected"),
    [
        (0, 100, 0.1),
        (50, 100, 0.55),
        (99, 100, 0.991),
        (100, 100, 1.0),
        (1000, 100, 1.0),
        (-5, 100, 0.1),  # clock stepped back: still at the floor
        (10, 0, 1.0),  # slow start off
    ],
)
def test_weight(elapsed: float, duration: int, expected: float) -> None:
    assert slow_start_weight(1000.0, 1000.0 + elapsed, duration) == pytest.approx(expected)


def test_floor_is_ten_percent() -> None:
    assert SLOW_START_FLOOR == 0.1


@given(st.floats(0, 1e9), st.floats(0, 2000), st.floats(0, 2000), st.integers(30, 900))
def test_weight_is_monotone_and_bounded(start: float, a: float, b: float, duration: int) -> None:
    lo, hi = sorted((a, b))
    w1, w2 = slow_start_weight(start, start + lo, duration), slow_start_weight(start, start + hi, duration)
    assert SLOW_START_FLOOR <= w1 <= w2 <= 1.0


def test_in_slow_start() -> None:
    assert in_slow_start(100.0, 100.0, 30)
    assert in_slow_start(100.0, 129.9, 30)
    assert not in_slow_start(100.0, 130.0, 30)
    assert not in_slow_start(None, 100.0, 30)
    assert not in_slow_start(100.0, 100.0, 0)


def test_enters_only_when_another_healthy_target_is_at_full_weight() -> None:
    assert not enters_slow_start(60, 0)  # first batch into an empty group: full share at once
    assert enters_slow_start(60, 1)
    assert enters_slow_start(60, 7)
    assert not enters_slow_start(0, 7)  # slow start off
