"""Application Auto Scaling schedule expressions, and when a scheduled action fires next.

Pure: no clock, no IO. :func:`parse` turns the ``Schedule`` of PutScheduledAction into a value or
raises :class:`ScheduleError` naming the part and the rule; :func:`next_fire` answers "the first
time after ``after`` this schedule fires", in epoch seconds. The scheduled-action round
(``control/scheduled_actions.py``) asks it once per round with the time of its previous round.

Expressions (AWS's syntax, docs/scheduled-scaling.md):

- ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall-clock time in the action's time zone.
- ``rate(N unit)``: every N minutes, hours or days (``minute``/``minutes``, ...). The first run is
  at StartTime when one is given, else one period after the action was put.
- ``cron(minutes hours day-of-month month day-of-week year)``: EventBridge's six fields. Lists
  ``,``, ranges ``-``, steps ``/`` and ``*`` in every field; names ``JAN``-``DEC`` and
  ``SUN``-``SAT`` (1 = Sunday); one of day-of-month and day-of-week must be ``?``; day-of-month
  also takes ``L`` (last day), ``nW`` (the weekday nearest day n, within the month) and ``LW``
  (last weekday); day-of-week takes ``L`` (Saturday, the week's last day), ``nL`` (the month's last
  weekday n) and ``n#k`` (its k-th weekday n). Years 1970-2199. With a StartTime, the action also
  runs at StartTime itself, then as the expression says ("performs the action at this time, and
  then performs the action based on the specified recurrence", AWS).

Wall-clock times are read in the IANA time zone given (``zoneinfo``). Daylight saving: a time
that does not exist (the hour skipped in spring) fires when the clock has moved past it, at the
same distance after the jump (02:30 -> 03:30), once; a time that happens twice (the hour repeated
in autumn) fires at its first occurrence only.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

YEARS = (1970, 2199)
_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_AT = re.compile(r"^at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)$")
_RATE = re.compile(r"^rate\(([1-9][0-9]{0,8}) ([a-z]+)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_T = TypeVar("_T")
_FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


class ScheduleError(ValueError):
    """The expression is not one AWS accepts, or uses what portside refuses; the message says which part."""


@dataclass(frozen=True)
class At:
    """Once, at this wall-clock time (naive: read in the action's time zone)."""

    when: datetime


@dataclass(frozen=True)
class Rate:
    period_s: int


@dataclass(frozen=True)
class DaysOfMonth:
    """``?`` (any), a set of days, ``L``, ``LW`` or ``nW``."""

    days: frozenset[int] | None = None  # None: any day
    last: bool = False
    last_weekday: bool = False
    nearest_weekday_to: int | None = None


@dataclass(frozen=True)
class DaysOfWeek:
    """``?`` (any), a set of weekdays (1 = Sunday), ``nL`` or ``n#k``."""

    weekdays: frozenset[int] | None = None  # None: any day
    last_of_month: int | None = None  # nL
    nth: tuple[int, int] | None = None  # n#k: (weekday, k)


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: DaysOfMonth
    months: frozenset[int]
    days_of_week: DaysOfWeek
    years: frozenset[int]


Schedule = At | Rate | Cron


# --------------------------------------------------------------------------- parsing


def parse(expression: str) -> Schedule:
    """The schedule ``expression`` names; ScheduleError when it is not valid."""
    if expression.startswith("at("):
        return _parse_at(expression)
    if expression.startswith("rate("):
        return _parse_rate(expression)
    if expression.startswith("cron("):
        return _parse_cron(expression)
    raise ScheduleError(
        f"Schedule '{expression}' is not valid: expected at(yyyy-mm-ddThh:mm:ss), rate(value unit) "
        "or cron(minutes hours day-of-month month day-of-week year)"
    )


def _parse_at(expression: str) -> At:
    match = _AT.match(expression)
    if match is None:
        raise ScheduleError(f"Schedule '{expression}' is not valid: an at expression is at(yyyy-mm-ddThh:mm:ss)")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return At(datetime(year, month, day, hour, minute, second))
    except ValueError as exc:
        raise ScheduleError(f"Schedule '{expression}' is not valid: {exc}") from None


def _parse_rate(expression: str) -> Rate:
    match = _RATE.match(expression)
    if match is None or match[2] not in _UNITS:
        raise ScheduleError(
            f"Schedule '{expression}' is not valid: a rate expression is rate(value unit) with a positive whole "
            "value and a unit of minute, minutes, hour, hours, day or days"
        )
    return Rate(int(match[1]) * _UNITS[match[2]])


def _parse_cron(expression: str) -> Cron:
    match = _CRON.match(expression)
    fields = match[1].split() if match else []
    if len(fields) != 6:
        raise ScheduleError(
            f"Schedule '{expression}' is not valid: a cron expression has six fields, "
            "cron(minutes hours day-of-month month day-of-week year)"
        )
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ScheduleError(
            f"Schedule '{expression}' is not valid: exactly one of day-of-month and day-of-week must be '?'"
        )

    def field(index: int, read: Callable[[str], _T]) -> _T:
        try:
            return read(fields[index])
        except ScheduleError as exc:
            raise ScheduleError(
                f"Schedule '{expression}' is not valid: {_FIELD_NAMES[index]} field '{fields[index]}': {exc}"
            ) from None

    # Read left to right, so the first bad field is the one named.
    return Cron(
        minutes=tuple(sorted(field(0, lambda text: _values(text, 0, 59, None)))),
        hours=tuple(sorted(field(1, lambda text: _values(text, 0, 23, None)))),
        days_of_month=field(2, _days_of_month),
        months=field(3, lambda text: _values(text, 1, 12, _MONTHS)),
        days_of_week=field(4, _days_of_week),
        years=field(5, lambda text: _values(text, *YEARS, None)),
    )


def _days_of_month(text: str) -> DaysOfMonth:
    if text == "?":
        return DaysOfMonth()
    if text == "L":
        return DaysOfMonth(last=True)
    if text == "LW":
        return DaysOfMonth(last_weekday=True)
    if text.endswith("W"):
        day = _number(text[:-1], 1, 31, None)
        return DaysOfMonth(nearest_weekday_to=day)
    if "L" in text or "W" in text:
        raise ScheduleError("L and W stand alone in day-of-month (L, LW, nW); portside does not support L-n")
    return DaysOfMonth(days=_values(text, 1, 31, None))


def _days_of_week(text: str) -> DaysOfWeek:
    if text == "?":
        return DaysOfWeek()
    if text == "L":
        return DaysOfWeek(weekdays=frozenset({7}))
    if "#" in text:
        weekday, _, nth = text.partition("#")
        return DaysOfWeek(nth=(_number(weekday, 1, 7, _WEEKDAYS), _number(nth, 1, 5, None)))
    if text.endswith("L"):
        return DaysOfWeek(last_of_month=_number(text[:-1], 1, 7, _WEEKDAYS))
    return DaysOfWeek(weekdays=_values(text, 1, 7, _WEEKDAYS))


def _number(text: str, low: int, high: int, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"'{text}' is not a number" + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{value} is outside {low}-{high}")
    return value


def _values(text: str, low: int, high: int, names: dict[str, int] | None) -> frozenset[int]:
    """The values a list of ``*``, ``a``, ``a-b``, each optionally ``/step``, stands for."""
    out: set[int] = set()
    for part in text.split(","):
        spread, slash, step_text = part.partition("/")
        step = _number(step_text, 1, high - low + 1 if high > low else 1, None) if slash else 1
        if spread == "*":
            first, last = low, high
        elif "-" in spread:
            a, _, b = spread.partition("-")
            first, last = _number(a, low, high, names), _number(b, low, high, names)
            if first > last:
                raise ScheduleError(f"range {spread} runs backwards; portside does not wrap ranges around")
        else:
            first = _number(spread, low, high, names)
            last = high if slash else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


# --------------------------------------------------------------------------- evaluation


def next_fire(
    schedule: Schedule,
    after: float,
    *,
    zone: ZoneInfo,
    put_at: float,
    start: float | None = None,
    end: float | None = None,
) -> float | None:
    """The first time (epoch seconds) strictly after ``after`` at which ``schedule`` fires, not
    before ``start`` nor after ``end``; None when it never fires again. ``put_at`` is when the
    action was put (where a rate without StartTime counts from)."""
    if isinstance(schedule, At):
        when = _instant(schedule.when, zone)
        found: float | None = when if when > after and (start is None or when >= start) else None
    elif isinstance(schedule, Rate):
        first = start if start is not None else put_at + schedule.period_s
        if after < first:
            found = first
        else:
            found = first + (int((after - first) // schedule.period_s) + 1) * schedule.period_s
    elif start is not None and after < start:
        found = start  # "If you specify a start time, Application Auto Scaling performs the action at this time" [AAS]
    else:
        found = _next_cron(schedule, after, zone)
    if found is None or (end is not None and found > end):
        return None
    return found


def _instant(local: datetime, zone: ZoneInfo) -> float:
    """Epoch seconds of a wall-clock time in ``zone``: the first of two (fold 0), and for a time
    that does not exist, as far after the jump as it was after the time before it."""
    return local.replace(tzinfo=zone, fold=0).timestamp()


def _next_cron(cron: Cron, after: float, zone: ZoneInfo) -> float | None:
    # Start a day early: a wall-clock time skipped by daylight saving lands after the jump.
    begin = datetime.fromtimestamp(after, zone).date() - timedelta(days=1)
    year, month = begin.year, begin.month
    while year <= YEARS[1]:
        if year in cron.years and month in cron.months:
            for day in sorted(_matching_days(cron, year, month)):
                if date(year, month, day) < begin:
                    continue
                instants = [
                    _instant(datetime(year, month, day, hour, minute), zone)
                    for hour in cron.hours for minute in cron.minutes
                ]
                later = [t for t in instants if t > after]
                if later:
                    return min(later)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _matching_days(cron: Cron, year: int, month: int) -> set[int]:
    length = calendar.monthrange(year, month)[1]
    days = set(range(1, length + 1))
    return _dom_days(cron.days_of_month, year, month, length) & _dow_days(cron.days_of_week, year, month, days)


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday."""
    return (date(year, month, day).weekday() + 1) % 7 + 1


def _dom_days(spec: DaysOfMonth, year: int, month: int, length: int) -> set[int]:
    if spec.last:
        return {length}
    if spec.last_weekday:
        day = length
        while _aws_weekday(year, month, day) in (1, 7):
            day -= 1
        return {day}
    if spec.nearest_weekday_to is not None:
        day = spec.nearest_weekday_to
        if day > length:
            return set()
        weekday = _aws_weekday(year, month, day)
        if weekday == 7:  # Saturday: the Friday before, or the Monday after when that leaves the month
            return {day - 1} if day > 1 else {day + 2}
        if weekday == 1:  # Sunday: the Monday after, or the Friday before when that leaves the month
            return {day + 1} if day < length else {day - 2}
        return {day}
    if spec.days is None:
        return set(range(1, length + 1))
    return {d for d in spec.days if d <= length}


def _dow_days(spec: DaysOfWeek, year: int, month: int, days: set[int]) -> set[int]:
    if spec.last_of_month is not None:
        return {max(d for d in days if _aws_weekday(year, month, d) == spec.last_of_month)}
    if spec.nth is not None:
        weekday, nth = spec.nth
        matching = sorted(d for d in days if _aws_weekday(year, month, d) == weekday)
        return {matching[nth - 1]} if nth <= len(matching) else set()
    if spec.weekdays is None:
        return days
    return {d for d in days if _aws_weekday(year, month, d) in spec.weekdays}
