"""portside.core.alarms: CloudWatch alarm evaluation against AWS's documented missing-data table
("Configuring how CloudWatch alarms treat missing data": 3 evaluation periods, 3 datapoints to
alarm, 5 datapoints in the evaluation range) plus properties (hypothesis)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.alarms import (
    EXTRA_PERIODS,
    AlarmRule,
    AlarmState,
    Bucket,
    Comparison,
    MissingData,
    evaluate,
    period_values,
    to_json,
)
from portside.core.metric_distribution import distribution_of

PERIOD = 60
NOW = 1_800_000_030.0  # 30 s into a period: the newest complete period ended 30 s ago
END = int(NOW // PERIOD) * PERIOD
OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA


def buckets(pattern: str, *, high: float = 10.0, low: float = 0.0) -> list[Bucket]:
    """AWS's notation, oldest first: ``X`` breaching, ``0`` not breaching, ``-`` missing; the last
    character is the newest complete period."""
    out = []
    for i, mark in enumerate(reversed(pattern.replace(" ", ""))):
        if mark == "-":
            continue
        value = high if mark == "X" else low
        out.append(Bucket(END - (i + 1) * PERIOD, 1, value, value, value))
    return out


def rule(n: int = 3, m: int | None = 3, missing: MissingData = MissingData.MISSING, **extra: object) -> AlarmRule:
    base: dict = {"statistic": "Average", "period_s": PERIOD, "evaluation_periods": n, "threshold": 5.0,
                      "comparison": Comparison.GREATER_THAN, "datapoints_to_alarm": m, "treat_missing": missing}
    base.update(extra)
    return AlarmRule(**base)


# AWS's table: data points (oldest first) -> state for missing, ignore, breaching, notBreaching.
AWS_TABLE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("- - - - 0", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT, "retain", ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - X - -", ALARM, ALARM, ALARM, OK),
]


@pytest.mark.parametrize("pattern,missing,ignore,breaching,not_breaching", AWS_TABLE)
def test_awss_missing_data_table(pattern: str, missing: object, ignore: object, breaching: object, not_breaching: object) -> None:
    expected = {
        MissingData.MISSING: missing, MissingData.IGNORE: ignore,
        MissingData.BREACHING: breaching, MissingData.NOT_BREACHING: not_breaching,
    }
    for treatment, state in expected.items():
        for current in (OK, ALARM, INSUFFICIENT):
            got = evaluate(rule(missing=treatment), buckets(pattern), NOW, current).state
            assert got is (current if state == "retain" else state), (pattern, treatment, current)


def test_the_evaluation_range_is_evaluation_periods_plus_extra() -> None:
    periods = period_values(rule(n=3), [], NOW)
    assert len(periods) == 3 + EXTRA_PERIODS
    assert periods[-1][0] == END - PERIOD  # the newest complete period
    assert [b - a for (a, _, _), (b, _, _) in itertools.pairwise(periods)] == [PERIOD] * (len(periods) - 1)
    # a breaching value older than the range is not seen
    old = [Bucket(END - (3 + EXTRA_PERIODS + 1) * PERIOD, 1, 10, 10, 10)]
    assert evaluate(rule(n=3), old, NOW, OK).state is INSUFFICIENT


def test_the_period_in_progress_is_not_evaluated() -> None:
    now_bucket = [Bucket(END, 1, 10, 10, 10)]
    assert evaluate(rule(n=1, m=1), now_bucket, NOW, OK).state is INSUFFICIENT
    assert evaluate(rule(n=1, m=1), now_bucket, END + PERIOD, OK).state is ALARM


@pytest.mark.parametrize(
    "pattern,m,state",
    [
        ("0 0 X 0 X", 2, ALARM),  # newest three: X 0 X -> 2 of 3 breach
        ("X X 0 0 X", 2, OK),  # older breaches are outside the newest three
        ("0 0 0 X X", 2, ALARM),
        ("0 0 X 0 X", 3, OK),
        ("X X X 0 X", 1, ALARM),
        ("0 0 0 0 0", 1, OK),
    ],
)
def test_m_out_of_n(pattern: str, m: int, state: AlarmState) -> None:
    got = evaluate(rule(n=3, m=m), buckets(pattern), NOW, OK)
    breaching = sum(1 for v in got.breach_values if v > 5)
    assert got.state is state, (pattern, m, got.reason)
    assert (breaching >= m) == (state is ALARM)


@pytest.mark.parametrize(
    "statistic,value",
    [("Average", 4.0), ("Sum", 12.0), ("SampleCount", 3.0), ("Minimum", 1.0), ("Maximum", 8.0)],
)
def test_statistics_merge_the_buckets_of_a_period(statistic: str, value: float) -> None:
    start = END - PERIOD
    parts = [Bucket(start, 2, 4.0, 1.0, 3.0), Bucket(start + 10, 1, 8.0, 8.0, 8.0)]
    got = evaluate(rule(n=1, m=1, statistic=statistic, threshold=value), parts, NOW, OK)
    assert got.breach_values == (value,)
    assert got.state is OK  # equal to the threshold is not greater than it
    assert evaluate(rule(n=1, m=1, statistic=statistic, threshold=value,
                         comparison=Comparison.GREATER_THAN_OR_EQUAL), parts, NOW, OK).state is ALARM


@pytest.mark.parametrize(
    "comparison,value,breaches",
    [
        (Comparison.GREATER_THAN, 5.0, False), (Comparison.GREATER_THAN, 5.5, True),
        (Comparison.GREATER_THAN_OR_EQUAL, 5.0, True), (Comparison.GREATER_THAN_OR_EQUAL, 4.9, False),
        (Comparison.LESS_THAN, 5.0, False), (Comparison.LESS_THAN, 4.9, True),
        (Comparison.LESS_THAN_OR_EQUAL, 5.0, True), (Comparison.LESS_THAN_OR_EQUAL, 5.1, False),
    ],
)
def test_comparison_operators(comparison: Comparison, value: float, breaches: bool) -> None:
    got = evaluate(rule(n=1, m=1, comparison=comparison), [Bucket(END - PERIOD, 1, value, value, value)], NOW, OK)
    assert got.state is (ALARM if breaches else OK)


def test_state_reason_and_data_read_as_cloudwatchs() -> None:
    got = evaluate(rule(n=3, m=2), buckets("0 0 X 0 X"), NOW, OK)
    assert got.state is ALARM
    assert got.reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [10.0 (")
    assert got.reason.endswith("were greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition).")
    data = json.loads(to_json(got.reason_data))
    assert data["version"] == "1.0" and data["statistic"] == "Average" and data["period"] == PERIOD
    assert data["recentDatapoints"] == [10.0, 0.0, 10.0]
    assert data["threshold"] == 5.0
    assert [d["value"] for d in data["evaluatedDatapoints"]] == [10.0, 0.0, 10.0]  # newest first
    ok = evaluate(rule(n=3, m=2), buckets("0 0 0 0 X"), NOW, ALARM)
    assert ok.state is OK
    assert "2 out of the last 3 datapoints" in ok.reason and "were not greater than" in ok.reason
    assert "(minimum 2 datapoints for ALARM -> OK transition)" in ok.reason
    none = evaluate(rule(n=1, m=1), [], NOW, OK)
    assert none.reason == "Insufficient Data: 1 datapoint was unknown."
    filled = evaluate(rule(missing=MissingData.BREACHING), buckets("- - - - -"), NOW, OK)
    assert "3 missing datapoints were treated as [Breaching]" in filled.reason


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="datapoints_to_alarm"):
        rule(n=2, m=3)
    with pytest.raises(ValueError, match="statistic"):
        rule(statistic="p101")
    with pytest.raises(ValueError, match="period_s"):
        rule(period_s=0)


# ----------------------------------------------------------------------------- properties

marks = st.lists(st.sampled_from("X0-"), min_size=1, max_size=8).map(" ".join)
treatments = st.sampled_from(list(MissingData))
states = st.sampled_from(list(AlarmState))


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 6))
    return n, draw(st.integers(1, n))


@given(marks, shapes(), states)
def test_with_enough_real_data_missing_data_treatment_plays_no_part(pattern: str, nm: tuple[int, int], current: AlarmState) -> None:
    n, m = nm
    data = buckets(pattern)
    real = [b for b in data if b.ts >= END - (n + EXTRA_PERIODS) * PERIOD]
    if len(real) < n:
        return
    got = {evaluate(rule(n=n, m=m, missing=t), data, NOW, current).state for t in MissingData}
    assert len(got) == 1


@given(marks, shapes(), states)
def test_breaching_fill_never_alarms_less_than_not_breaching(pattern: str, nm: tuple[int, int], current: AlarmState) -> None:
    n, m = nm
    data = buckets(pattern)
    as_breaching = evaluate(rule(n=n, m=m, missing=MissingData.BREACHING), data, NOW, current).state
    as_fine = evaluate(rule(n=n, m=m, missing=MissingData.NOT_BREACHING), data, NOW, current).state
    assert as_breaching is ALARM or as_fine is not ALARM
    assert INSUFFICIENT not in (as_breaching, as_fine)


@given(marks, shapes(), treatments, states)
def test_turning_a_value_into_a_breach_never_clears_an_alarm(pattern: str, nm: tuple[int, int], treatment: MissingData, current: AlarmState) -> None:
    n, m = nm
    before = evaluate(rule(n=n, m=m, missing=treatment), buckets(pattern), NOW, current).state
    if before is not ALARM or "0" not in pattern:
        return
    worse = pattern.replace("0", "X", 1)
    assert evaluate(rule(n=n, m=m, missing=treatment), buckets(worse), NOW, current).state is ALARM


@given(marks, shapes(), treatments)
def test_only_ignore_depends_on_the_current_state(pattern: str, nm: tuple[int, int], treatment: MissingData) -> None:
    n, m = nm
    got = {evaluate(rule(n=n, m=m, missing=treatment), buckets(pattern), NOW, s).state for s in AlarmState}
    assert len(got) == 1 or treatment is MissingData.IGNORE


# ----------------------------------------------------------------------------- percentiles


def spread(ts: float, values: list[float]) -> Bucket:
    """A bucket holding ``values`` as a statistic set and as a distribution."""
    return Bucket(ts, len(values), sum(values), min(values), max(values), distribution_of(values))


def test_a_percentile_comes_from_the_distribution() -> None:
    values = [float(v) for v in range(1, 101)]  # p90 of 1..100 is about 90
    data = [spread(END - PERIOD, values[:50]), spread(END - PERIOD + 30, values[50:])]
    got = evaluate(rule(n=1, m=1, statistic="p90", threshold=85.0), data, NOW, OK)
    assert got.state is ALARM
    assert 88.0 <= got.breach_values[0] <= 92.0
    assert evaluate(rule(n=1, m=1, statistic="p50", threshold=85.0), data, NOW, OK).state is OK
    assert evaluate(rule(n=1, m=1, statistic="p100", threshold=99.0), data, NOW, OK).breach_values == (100.0,)


def test_a_period_of_statistic_sets_alone_has_no_percentile() -> None:
    sets_only = [Bucket(END - PERIOD, 10, 500.0, 1.0, 99.0)]
    assert evaluate(rule(n=1, m=1, statistic="p99"), sets_only, NOW, OK).state is INSUFFICIENT


@pytest.mark.parametrize(
    "statistic,samples,significant",
    [("p99", 999, False), ("p99", 1000, True), ("p90", 100, True), ("p90", 99, False),
     ("p10", 100, True), ("p10", 99, False), ("p50", 20, True), ("p100", 1, True), ("Maximum", 1, True)],
)
def test_low_sample_counts_keep_the_state_when_told_to_ignore_them(statistic: str, samples: int, significant: bool) -> None:
    data = [spread(END - PERIOD, [100.0] * samples)]
    strict = rule(n=1, m=1, statistic=statistic, threshold=5.0, ignore_low_sample_count=True)
    assert strict.significant(samples) is significant
    got = evaluate(strict, data, NOW, OK)
    assert got.state is (ALARM if significant else OK)
    assert evaluate(rule(n=1, m=1, statistic=statistic, threshold=5.0), data, NOW, OK).state is ALARM
