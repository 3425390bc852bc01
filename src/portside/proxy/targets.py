"""Live targets and target groups in the data plane, and how one is chosen per request.

A ``TargetRuntime`` outlives configuration swaps (it is keyed by target group ARN,
target id and port): it carries health, in-flight count, the keep-alive pool and
the slow-start clock. A ``GroupRuntime`` keeps ``eligible``, the tuple requests
are balanced over, and rebuilds it only when health, draining or membership
change — never per request.

Eligibility (ALB's rules, spec alb.md §1): healthy, non-draining targets; if
there are none and every registered non-draining target is unhealthy, all of
those (fail open); otherwise none, and the request gets a 503.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from portside.core.lb.model import TargetGroup
from portside.core.metric_distribution import INV_LOG_GROWTH, ZERO

if TYPE_CHECKING:
    from portside.proxy.exchange import Exchange
    from portside.proxy.upstream import UpstreamPool

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
INITIAL = "initial"
DRAINING = "draining"
# The share of traffic a target gets at the very start of its slow start ramp.
SLOW_START_FLOOR = 0.1
# Upper bounds (seconds) of the request latency histogram buckets; the last bucket is +Inf.
# The distribution's buckets (core/metric_distribution.py), as constants mypyc can compile in.
LATENCY_INV_LOG_GROWTH: float = INV_LOG_GROWTH
LATENCY_ZERO_BUCKET: int = ZERO
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TargetRuntime:
    __slots__ = (
        "group_arn", "id", "port", "address", "health", "draining", "drain_deadline", "in_flight",
        "pool", "healthy_since", "slow_start_until", "key", "key_text", "removed", "connecting",
    )

    def __init__(self, group_arn: str, target_id: str, port: int, address: str, pool: UpstreamPool) -> None:
        self.group_arn = group_arn
        self.id = target_id
        self.port = port
        self.address = address
        self.key = (target_id, port)
        self.key_text = f"{target_id}:{port}"  # how a stickiness cookie names it
        self.health: Any = None  # core.lb.health.TargetHealth, set by the health checker
        self.draining = False
        self.drain_deadline: float | None = None
        self.in_flight = 0
        self.pool = pool
        self.healthy_since: float | None = None
        self.slow_start_until = 0.0
        self.removed = False
        self.connecting: set[Exchange] = set()  # exchanges whose connect to this target is in progress

    @property
    def state(self) -> str:
        if self.draining:
            return DRAINING
        return getattr(self.health, "state", INITIAL)


def _in_flight(target: TargetRuntime) -> int:
    return target.in_flight


class GroupRuntime:
    """One target group's live targets and the balancing over them."""

    def __init__(self, config: TargetGroup, on_change: Callable[[], None]) -> None:
        self.config = config
        self.targets: dict[tuple[str, int], TargetRuntime] = {}
        self.eligible: tuple[TargetRuntime, ...] = ()
        self.least_outstanding = False
        self.slow_start_s = 0
        self.sticky = False
        self._rr = 0
        self._on_change = on_change
        # metrics, read by the scaler and /metrics (plain counters: cheap on the request path)
        self.requests = 0
        self.by_code: dict[int, int] = {}
        self.latency_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        # the fastest and slowest response since take_latency_extremes() (CloudWatch's Minimum/Maximum)
        self.latency_min_s = -1.0
        self.latency_max_s = -1.0
        # responses per logarithmic latency bucket since take_latency_buckets() (CloudWatch's percentiles)
        self.latency_buckets: dict[int, int] = {}
        self.reconfigure(config)

    def reconfigure(self, config: TargetGroup) -> None:
        self.config = config
        attrs = config.attributes
        self.least_outstanding = attrs.algorithm == "least_outstanding_requests"
        self.slow_start_s = attrs.slow_start_s
        self.sticky = attrs.stickiness_enabled

    def rebuild(self, now: float) -> None:
        """Recompute ``eligible`` after a health, draining or membership change."""
        live = [t for t in self.targets.values() if not t.draining]
        healthy = [t for t in live if t.state == HEALTHY]
        if healthy:
            chosen = healthy
        elif live and all(t.state == UNHEALTHY for t in live):
            chosen = live  # fail open, as ALB does
        else:
            chosen = []
        self.eligible = tuple(chosen)
        self._on_change()

    def pick(self, now: float, exclude: TargetRuntime | None = None) -> TargetRuntime | None:
        """The next target for a request (``exclude``: one that just failed, for a retry)."""
        eligible = self.eligible
        n = len(eligible)
        if n == 0:
            return None
        if exclude is not None:
            # A retry: pick among the others without moving the rotation, or the failed target
            # would be next in line again and every later request would cost a retry.
            others = [t for t in eligible if t is not exclude]
            if not others:
                return None
            if self.least_outstanding:
                return min(others, key=_in_flight)
            return others[self._rr % len(others)]
        if self.least_outstanding:
            start = self._rr = (self._rr + 1) % n
            best = eligible[start]
            for i in range(1, n):
                candidate = eligible[(start + i) % n]
                if candidate.in_flight < best.in_flight:
                    best = candidate
            return best
        self._rr = index = (self._rr + 1) % n
        target = eligible[index]
        if self.slow_start_s and target.slow_start_until > now:
            # Linear ramp: a target in slow start is taken with probability equal to its weight.
            for _ in range(n):
                weight = max(SLOW_START_FLOOR, 1.0 - (target.slow_start_until - now) / self.slow_start_s)
                if random.random() < weight:
                    return target
                self._rr = index = (index + 1) % n
                target = eligible[index]
                if target.slow_start_until <= now:
                    return target
        return target

    def observe_latency(self, seconds: float) -> None:
        self.latency_counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds
        if self.latency_min_s < 0 or seconds < self.latency_min_s:
            self.latency_min_s = seconds
        if seconds > self.latency_max_s:
            self.latency_max_s = seconds
        # core/metric_distribution.bucket_of, inlined: a call into a module mypyc did not compile costs ~1 µs
        key = 2 * math.floor(math.log(seconds) * LATENCY_INV_LOG_GROWTH) if seconds > 0 else LATENCY_ZERO_BUCKET
        buckets = self.latency_buckets
        buckets[key] = buckets.get(key, 0) + 1

    def take_latency_buckets(self) -> dict[int, int]:
        """Responses per latency bucket (core/metric_distribution.py) since the last call, and start over."""
        buckets = self.latency_buckets
        self.latency_buckets = {}
        return buckets

    def take_latency_extremes(self) -> tuple[float, float] | None:
        """(fastest, slowest) response since the last call, and start over; None if there was none."""
        low, high = self.latency_min_s, self.latency_max_s
        self.latency_min_s = self.latency_max_s = -1.0
        return None if low < 0 else (low, high)

    def find(self, key: tuple[str, int]) -> TargetRuntime | None:
        target = self.targets.get(key)
        if target is None or target.draining or target not in self.eligible:
            return None
        return target
