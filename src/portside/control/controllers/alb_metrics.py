"""The leader records the load balancer's CloudWatch metrics and trims the old ones.

Every ``--scaling-period`` seconds (60 by default, CloudWatch's 1-minute resolution) it samples
the counters its own proxy keeps (``plane.lb``: the same counters request-count scaling reads),
turns the period's growth into ``AWS/ApplicationELB`` measurements (``core/alb_metrics.py``) and
merges them into the store's buckets: 60-second buckets, or 1-second ones when the period is
shorter than a minute. Every ``TRIM_INTERVAL_S`` it deletes buckets older than
``--metrics-retention``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from portside.config import DEFAULT_METRICS_RETENTION_S
from portside.control import rounds
from portside.control.plane import ControlPlane
from portside.core import alb_metrics as core

log = logging.getLogger("portside.metrics")

TRIM_INTERVAL_S = 600.0


class AlbMetricsRecorder:
    def __init__(self, plane: ControlPlane, period_s: float, retention_s: float = DEFAULT_METRICS_RETENTION_S) -> None:
        self.plane = plane
        self.period_s = period_s
        self.retention_s = retention_s
        self.resolution = 60 if period_s >= 60 else 1
        self._balancers: dict[str, core.LoadBalancerSample] = {}
        self._groups: dict[str, core.GroupSample] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._balancers, self._groups, _ = self.sample()  # the baseline: the first period counts from here
        self._tasks = [
            asyncio.ensure_future(rounds.every(self.period_s, lambda: self.tick(self.plane.clock()), "metrics round", log)),
            asyncio.ensure_future(rounds.every(min(TRIM_INTERVAL_S, self.retention_s), lambda: self.trim(self.plane.clock()),
                                               "metrics trim", log)),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def sample(self) -> tuple[dict[str, core.LoadBalancerSample], dict[str, core.GroupSample], dict[str, str]]:
        """Read the proxy's counters now; returns (balancers, groups, group -> balancer) and keeps them."""
        lb: Any = self.plane.lb
        balancers: dict[str, core.LoadBalancerSample] = {}
        groups: dict[str, core.GroupSample] = {}
        group_balancer: dict[str, str] = {}
        if lb is None:
            return balancers, groups, group_balancer
        totals: dict[str, dict[str, Any]] = {}
        for listener in lb.config.listeners:
            total = totals.setdefault(listener.load_balancer_arn, {"requests": 0, "errors": {}, "connections": 0})
            bound = lb.listeners.get(listener.arn)
            if bound is not None:
                total["requests"] += bound.requests
                total["connections"] += len(bound.connections)
                for code, count in bound.elb_errors.items():
                    total["errors"][code] = total["errors"].get(code, 0) + count
            for rule in listener.rules:
                for action in rule.actions:
                    for group in action.target_groups:
                        group_balancer.setdefault(group.arn, listener.load_balancer_arn)
        for arn, total in totals.items():
            balancers[arn] = core.LoadBalancerSample(total["requests"], total["errors"], total["connections"])
        for arn, group in lb.groups.items():
            extremes = group.take_latency_extremes()
            latency_buckets = group.take_latency_buckets()
            states = [target.state for target in group.targets.values() if not target.draining]
            groups[arn] = core.GroupSample(
                requests=group.requests, by_code=dict(group.by_code), latency_count=sum(group.latency_counts),
                latency_sum_s=group.latency_sum_s,
                latency_min_s=extremes[0] if extremes else None, latency_max_s=extremes[1] if extremes else None,
                healthy=sum(1 for s in states if s == "healthy"), unhealthy=sum(1 for s in states if s == "unhealthy"),
                latency_buckets=latency_buckets,
            )
        return balancers, groups, group_balancer

    def tick(self, now: float) -> None:
        balancers, groups, group_balancer = self.sample()
        measured = core.measurements(balancers, groups, group_balancer, self._balancers, self._groups)
        self._balancers, self._groups = balancers, groups
        at = now - self.period_s / 2  # inside the period just measured
        region = self.plane.config.region
        store = self.plane.store
        with store.transaction():
            for m in measured:
                store.record_metric(region, core.NAMESPACE, m.metric_name, m.dimensions, at, m.stats, m.unit, self.resolution)
                if m.distribution:
                    store.record_distribution(region, core.NAMESPACE, m.metric_name, m.dimensions, at, m.distribution,
                                              self.resolution)

    def trim(self, now: float) -> int:
        with self.plane.store.transaction():
            before = now - self.retention_s
            return self.plane.store.trim_metrics(before) + self.plane.store.trim_distributions(before)
