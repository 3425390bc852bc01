"""Slow start: a newly healthy target's share of traffic ramps up linearly.

Theory of operation
-------------------
With ``slow_start.duration_seconds`` = D > 0 (30-900), a target that becomes healthy "enters
slow start" and the balancer "linearly increases the number of requests that it can send" to
it until D seconds have passed (spec alb.md §1.4). We model that as a weight multiplier
applied by the balancer (round robin: a weighted choice; the caller multiplies its nominal
weight by ``slow_start_weight``):

    weight(t) = FLOOR + (1 - FLOOR) * (t - became_healthy_at) / D     clamped to [FLOOR, 1]

FLOOR = 0.1, Envoy's default ``min_weight_percent`` of 10% [ENV-COMMON]: a ramp from exactly
zero would starve a new target of the very requests that warm it up, and with round robin
over a handful of targets a 10% share is still a trickle.

When a target enters slow start (ALB rules; the caller tracks ``became_healthy_at``):

* on the ``initial``/``unhealthy`` -> ``healthy`` transition, and only if
  ``enters_slow_start`` says so: "Newly registered targets enter slow start mode only when
  there is at least one healthy target that is not in slow start mode" — the first batch into
  an empty group gets its full share at once;
* it leaves slow start when D has elapsed, when it becomes unhealthy (and re-enters when healthy
  again), or when it is deregistered;
* targets already healthy when slow start is switched on do not enter it.

Pure: the clock is an argument.
"""

from __future__ import annotations

__all__ = ["SLOW_START_FLOOR", "enters_slow_start", "in_slow_start", "slow_start_weight"]

SLOW_START_FLOOR = 0.1


def slow_start_weight(became_healthy_at: float, now: float, duration_s: int) -> float:
    """The weight multiplier of a target in (or past) slow start.

    :param became_healthy_at: when the target entered slow start (seconds, same clock as ``now``).
    :param duration_s: ``slow_start.duration_seconds``; 0 disables slow start.
    Returns: a float in [SLOW_START_FLOOR, 1.0]; 1.0 when slow start is off or over, and
        SLOW_START_FLOOR at (or, for a clock that stepped back, before) the start.
    """
    if duration_s <= 0:
        return 1.0
    elapsed = now - became_healthy_at
    if elapsed >= duration_s:
        return 1.0
    if elapsed <= 0:
        return SLOW_START_FLOOR
    return SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * (elapsed / duration_s)


def in_slow_start(became_healthy_at: float | None, now: float, duration_s: int) -> bool:
    """Whether a target is still ramping.

    :param became_healthy_at: when it entered slow start, or None if it never did.
    Returns: True while ``now - became_healthy_at < duration_s`` (and slow start is on).
    """
    if became_healthy_at is None or duration_s <= 0:
        return False
    return now - became_healthy_at < duration_s


def enters_slow_start(duration_s: int, healthy_not_in_slow_start: int) -> bool:
    """Whether a target that just became healthy starts in slow start.

    :param healthy_not_in_slow_start: how many OTHER targets of the group are healthy and not
        in slow start right now.
    Returns: True when slow start is on and at least one such target exists.
    """
    return duration_s > 0 and healthy_not_in_slow_start >= 1
