"""core/schedule.py: AWS's at(), rate() and cron() expressions, and the next time one fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core.schedule import ScheduleError, next_fire, parse

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # a half-hour daylight-saving shift


def at(zone: ZoneInfo, *fields: int) -> float:
    return datetime(*fields, tzinfo=zone).timestamp()  # type: ignore[misc]


def fire(expression: str, after: float, zone: ZoneInfo = UTC_ZONE, **bounds: float) -> str | None:
    found = next_fire(parse(expression), after, zone=zone, put_at=after, **bounds)
    return None if found is None else datetime.fromtimestamp(found, zone).isoformat()


# ----------------------------------------------------------------------------- cron fields


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("cron(0 9 * * ? *)", (2026, 3, 2, 9, 0), "2026-03-03T09:00:00+00:00"),  # strictly after
    ("cron(0 9 * * ? *)", (2026, 3, 2, 8, 59), "2026-03-02T09:00:00+00:00"),
    ("cron(0/15 * * * ? *)", (2026, 3, 2, 9, 1), "2026-03-02T09:15:00+00:00"),
    ("cron(5,35 8-10 * * ? *)", (2026, 3, 2, 10, 40), "2026-03-03T08:05:00+00:00"),
    ("cron(0 12 ? * MON-FRI *)", (2026, 3, 6, 13, 0), "2026-03-09T12:00:00+00:00"),  # Fri 13:00 -> Mon
    ("cron(0 12 ? * 2,6 *)", (2026, 3, 3, 0, 0), "2026-03-06T12:00:00+00:00"),  # 2 = Monday, 6 = Friday
    ("cron(0 0 1 JAN,JUL ? *)", (2026, 3, 2, 0, 0), "2026-07-01T00:00:00+00:00"),
    ("cron(0 0 29 2 ? *)", (2026, 3, 2, 0, 0), "2028-02-29T00:00:00+00:00"),  # the next leap day
    ("cron(0 0 1 1 ? 2030-2032)", (2026, 3, 2, 0, 0), "2030-01-01T00:00:00+00:00"),
    ("cron(0 0 L * ? *)", (2026, 2, 1, 0, 0), "2026-02-28T00:00:00+00:00"),
    ("cron(0 0 L * ? *)", (2028, 2, 1, 0, 0), "2028-02-29T00:00:00+00:00"),
    ("cron(0 0 LW * ? *)", (2026, 5, 1, 0, 0), "2026-05-29T00:00:00+00:00"),  # May 31 2026 is a Sunday
    ("cron(0 0 15W * ? *)", (2026, 8, 1, 0, 0), "2026-08-14T00:00:00+00:00"),  # the 15th a Saturday: Friday
    ("cron(0 0 16W * ? *)", (2026, 8, 1, 0, 0), "2026-08-17T00:00:00+00:00"),  # the 16th a Sunday: Monday
    ("cron(0 0 1W * ? *)", (2026, 7, 31, 0, 0), "2026-08-03T00:00:00+00:00"),  # the 1st a Saturday: Monday 3rd
    ("cron(0 0 31W * ? *)", (2026, 5, 1, 0, 0), "2026-05-29T00:00:00+00:00"),  # the 31st a Sunday: Friday 29th
    ("cron(0 0 31W * ? *)", (2026, 4, 1, 0, 0), "2026-05-29T00:00:00+00:00"),  # April has no 31st
    ("cron(0 9 ? * 6L *)", (2026, 3, 1, 0, 0), "2026-03-27T09:00:00+00:00"),  # last Friday
    ("cron(0 9 ? * L *)", (2026, 3, 1, 0, 0), "2026-03-07T09:00:00+00:00"),  # L: Saturday
    ("cron(0 9 ? * MON#2 *)", (2026, 3, 1, 0, 0), "2026-03-09T09:00:00+00:00"),
    ("cron(0 9 ? * 1#5 *)", (2026, 3, 1, 0, 0), "2026-03-29T09:00:00+00:00"),  # fifth Sunday...
    ("cron(0 9 ? * 1#5 *)", (2026, 3, 30, 0, 0), "2026-05-31T09:00:00+00:00"),  # ...not in April
    ("cron(0 0 1 1 ? 2020)", (2026, 3, 1, 0, 0), None),  # only in the past
    ("cron(0 0 30 2 ? *)", (2026, 3, 1, 0, 0), None),  # never
])
def test_cron_fires_next_at(expression: str, after: tuple[int, ...], expected: str | None) -> None:
    assert fire(expression, at(UTC_ZONE, *after)) == expected


@pytest.mark.parametrize(("expression", "complaint"), [
    ("cron(0 0 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 0 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 0 * * ?)", "has six fields"),
    ("cron(60 0 * * ? *)", "minutes field '60': 60 is outside 0-59"),
    ("cron(0 24 * * ? *)", "hours field '24'"),
    ("cron(0 0 32 * ? *)", "day-of-month field '32'"),
    ("cron(0 0 0 * ? *)", "day-of-month field '0'"),
    ("cron(0 0 * 13 ? *)", "month field '13'"),
    ("cron(0 0 * FOO ? *)", "month field 'FOO': 'FOO' is not a number or a name"),
    ("cron(0 0 ? * 8 *)", "day-of-week field '8'"),
    ("cron(0 0 ? * MON#6 *)", "day-of-week field 'MON#6'"),
    ("cron(0 0 ? * 2L,3 *)", "day-of-week field '2L,3'"),
    ("cron(0 0 * * ? 1969)", "year field '1969'"),
    ("cron(0 0 * * ? 2200)", "year field '2200'"),
    ("cron(0 0 L-2 * ? *)", "portside does not support L-n"),
    ("cron(0 0 5-3 * ? *)", "range 5-3 runs backwards"),
    ("cron(0/0 0 * * ? *)", "minutes field '0/0'"),
    ("cron(a b ? d e f)", "minutes field 'a'"),
    ("rate(0 minutes)", "positive whole value"),
    ("rate(5 weeks)", "unit of minute, minutes, hour, hours, day or days"),
    ("rate(5minutes)", "rate(value unit)"),
    ("rate(-1 minutes)", "positive whole value"),
    ("at(2026-02-30T00:00:00)", "day is out of range for month"),
    ("at(2026-03-01 00:00:00)", "at(yyyy-mm-ddThh:mm:ss)"),
    ("at(2026-03-01T25:00:00)", "hour must be in 0..23"),
    ("every 5 minutes", "expected at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron("),
])
def test_invalid_expressions_are_refused_naming_the_part(expression: str, complaint: str) -> None:
    with pytest.raises(ScheduleError) as exc:
        parse(expression)
    assert complaint in str(exc.value)
    assert f"Schedule '{expression}' is not valid" in str(exc.value)


# ----------------------------------------------------------------------------- at() and rate()


def test_at_fires_once_at_its_wall_clock_time_in_the_zone() -> None:
    expected = at(NEW_YORK, 2026, 6, 1, 9, 30)
    schedule = parse("at(2026-06-01T09:30:00)")
    assert next_fire(schedule, expected - 1, zone=NEW_YORK, put_at=0) == expected
    assert next_fire(schedule, expected, zone=NEW_YORK, put_at=0) is None  # once
    assert fire("at(2026-06-01T09:30:00)", expected - 1, NEW_YORK) == "2026-06-01T09:30:00-04:00"


def test_rate_counts_from_start_time_else_from_the_put() -> None:
    schedule = parse("rate(2 hours)")
    put = at(UTC_ZONE, 2026, 3, 1, 10, 0)
    assert next_fire(schedule, put, zone=UTC_ZONE, put_at=put) == put + 7200
    assert next_fire(schedule, put + 7200, zone=UTC_ZONE, put_at=put) == put + 14400
    assert next_fire(schedule, put + 7300, zone=UTC_ZONE, put_at=put) == put + 14400
    start = put + 600
    assert next_fire(schedule, put, zone=UTC_ZONE, put_at=put, start=start) == start
    assert next_fire(schedule, start, zone=UTC_ZONE, put_at=put, start=start) == start + 7200
    assert parse("rate(1 minute)") == parse("rate(1 minutes)")
    assert next_fire(parse("rate(3 days)"), put, zone=UTC_ZONE, put_at=put) == put + 3 * 86400


def test_start_and_end_time_bound_every_kind() -> None:
    after = at(UTC_ZONE, 2026, 3, 2, 0, 0)
    start, end = at(UTC_ZONE, 2026, 3, 5, 0, 0), at(UTC_ZONE, 2026, 3, 6, 12, 0)
    # a recurring schedule with a StartTime runs at StartTime, then by its recurrence
    assert fire("cron(0 9 * * ? *)", after, start=start + 60, end=end) == "2026-03-05T00:01:00+00:00"
    assert fire("cron(0 9 * * ? *)", start + 60, start=start + 60, end=end) == "2026-03-05T09:00:00+00:00"
    assert fire("cron(0 9 * * ? *)", at(UTC_ZONE, 2026, 3, 5, 9, 0), start=start, end=end) == "2026-03-06T09:00:00+00:00"
    assert fire("cron(0 9 * * ? *)", at(UTC_ZONE, 2026, 3, 6, 9, 0), start=start, end=end) is None
    assert fire("cron(0 0 1 1 ? 2020)", after, start=start) == "2026-03-05T00:00:00+00:00"  # StartTime alone
    assert fire("at(2026-03-04T00:00:00)", after, start=start) is None
    assert fire("at(2026-03-07T00:00:00)", after, end=end) is None
    assert fire("rate(1 day)", after, start=start, end=end) == "2026-03-05T00:00:00+00:00"


# ----------------------------------------------------------------------------- daylight saving


def test_a_time_skipped_in_spring_fires_once_just_after_the_jump() -> None:
    # New York 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist
    day_before = at(NEW_YORK, 2026, 3, 7, 12, 0)
    assert fire("cron(30 2 * * ? *)", day_before, NEW_YORK) == "2026-03-08T03:30:00-04:00"
    assert fire("cron(30 2 * * ? *)", at(NEW_YORK, 2026, 3, 8, 3, 30), NEW_YORK) == "2026-03-09T02:30:00-04:00"
    # 02:30 and 03:30 land on the same instant that day: it fires once
    first = next_fire(parse("cron(30 2,3 * * ? *)"), day_before + 14 * 3600, zone=NEW_YORK, put_at=0)
    assert first is not None
    assert datetime.fromtimestamp(first, NEW_YORK).isoformat() == "2026-03-08T03:30:00-04:00"
    second = next_fire(parse("cron(30 2,3 * * ? *)"), first, zone=NEW_YORK, put_at=0)
    assert second is not None and datetime.fromtimestamp(second, NEW_YORK).isoformat() == "2026-03-09T02:30:00-04:00"
    assert fire("at(2026-03-08T02:30:00)", day_before, NEW_YORK) == "2026-03-08T03:30:00-04:00"


def test_a_time_repeated_in_autumn_fires_at_its_first_occurrence_only() -> None:
    # New York 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice
    first = next_fire(parse("cron(30 1 * * ? *)"), at(NEW_YORK, 2026, 10, 31, 12, 0), zone=NEW_YORK, put_at=0)
    assert first is not None
    assert datetime.fromtimestamp(first, UTC).isoformat() == "2026-11-01T05:30:00+00:00"  # 01:30 EDT
    following = next_fire(parse("cron(30 1 * * ? *)"), first, zone=NEW_YORK, put_at=0)
    assert following is not None
    assert following - first == 25 * 3600  # not 01:30 EST an hour later: tomorrow's 01:30 EST


def test_a_half_hour_shift_and_another_zone() -> None:
    # Lord Howe 2026-10-04: 02:00 -> 02:30; 02:15 does not exist
    assert fire("cron(15 2 * * ? *)", at(LORD_HOWE, 2026, 10, 3, 12, 0), LORD_HOWE) == "2026-10-04T02:45:00+11:00"
    # London 2026-03-29: 01:00 GMT -> 02:00 BST
    assert fire("cron(0 9 * * ? *)", at(LONDON, 2026, 3, 29, 0, 0), LONDON) == "2026-03-29T09:00:00+01:00"


def test_every_hour_across_both_shifts_is_strictly_increasing_and_keeps_the_wall_clock() -> None:
    t = at(NEW_YORK, 2026, 3, 7, 0, 0)
    seen = []
    for _ in range(24 * 240):  # through both 2026 shifts
        found = next_fire(parse("cron(0 * * * ? *)"), t, zone=NEW_YORK, put_at=0)
        assert found is not None and found > t
        seen.append(datetime.fromtimestamp(found, NEW_YORK))
        t = found
    assert all(moment.minute == 0 for moment in seen)
    assert len({m.isoformat() for m in seen}) == len(seen)


# ----------------------------------------------------------------------------- against brute force


def brute_force(minutes: set[int], hours: set[int], days: set[int], weekdays: set[int], after: datetime) -> datetime | None:
    """The first minute after ``after`` (UTC) matching, by walking minute by minute over 3 days."""
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(3 * 24 * 60):
        aws_weekday = (moment.weekday() + 1) % 7 + 1
        if moment.minute in minutes and moment.hour in hours and moment.day in days and aws_weekday in weekdays:
            return moment
        moment += timedelta(minutes=1)
    return None


@settings(max_examples=150, deadline=None)
@given(
    minutes=st.sets(st.integers(0, 59), min_size=1, max_size=4),
    hours=st.sets(st.integers(0, 23), min_size=1, max_size=4),
    weekdays=st.one_of(st.none(), st.sets(st.integers(1, 7), min_size=1, max_size=3)),
    after=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_cron_agrees_with_a_minute_by_minute_walk(
    minutes: set[int], hours: set[int], weekdays: set[int] | None, after: datetime
) -> None:
    dow = "?" if weekdays is None else ",".join(map(str, sorted(weekdays)))
    dom = "*" if weekdays is None else "?"
    expression = f"cron({','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} {dom} * {dow} *)"
    start = after.replace(tzinfo=UTC)
    expected = brute_force(minutes, hours, set(range(1, 32)), weekdays or set(range(1, 8)), start)
    found = next_fire(parse(expression), start.timestamp(), zone=UTC_ZONE, put_at=0)
    assert found is not None
    if expected is None:
        assert found > (start + timedelta(days=3)).timestamp()
    else:
        assert found == expected.timestamp()


@settings(max_examples=100, deadline=None)
@given(
    period=st.integers(1, 500), unit=st.sampled_from(["minutes", "hours", "days"]),
    put=st.floats(1.7e9, 1.9e9), later=st.floats(0, 1e8),
)
def test_rate_fires_on_the_grid_and_next_after(period: int, unit: str, put: float, later: float) -> None:
    seconds = period * {"minutes": 60, "hours": 3600, "days": 86400}[unit]
    after = put + later
    found = next_fire(parse(f"rate({period} {unit})"), after, zone=UTC_ZONE, put_at=put)
    assert found is not None
    assert after < found <= after + seconds + 1e-6
    steps = (found - put) / seconds
    assert abs(steps - round(steps)) < 1e-6 and round(steps) >= 1
