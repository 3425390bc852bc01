"""Recording the load balancer's CloudWatch metrics, and trimming the old ones.

Every replica serves the listeners on its own machine (docs/replicas.md), so every replica
records: every ``--scaling-period`` seconds (60 by default, CloudWatch's 1-minute resolution) it
samples the counters its own proxy keeps (``plane.lb``: the same counters request-count scaling
reads),
turns the period's growth into ``AWS/ApplicationELB`` measurements (``core/alb_metrics.py``,
``proxy/cloudwatch_sample.py``) and merges them into the store's buckets: 60-second buckets, or
1-second ones when the period is shorter than a minute; the host counts (a health view) only
while it leads. ``portside lb`` nodes report theirs through ``PortsideAgent.ReportMetrics``
(control/metric_reports.py) into the same buckets. Every ``TRIM_INTERVAL_S`` the leader deletes
buckets older than ``--metrics-retention``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from portside.config import DEFAULT_METRICS_RETENTION_S
from portside.control import rounds
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core import alb_metrics as core
from portside.proxy.cloudwatch_sample import LEADER_ONLY, ProxySampler

log = logging.getLogger("portside.metrics")

TRIM_INTERVAL_S = 600.0


def resolution_for(period_s: float) -> int:
    """The bucket a period's measurements go in: 60 s, or 1 s (high resolution) below a minute."""
    return 60 if period_s >= 60 else 1


def record(store: Store, region: str, measured: Iterable[core.Measurement], at: float, resolution: int) -> None:
    """Merge measurements into the store's buckets (the caller holds the transaction)."""
    for m in measured:
        store.record_metric(region, core.NAMESPACE, m.metric_name, m.dimensions, at, m.stats, m.unit, resolution)
        if m.distribution:
            store.record_distribution(region, core.NAMESPACE, m.metric_name, m.dimensions, at, m.distribution, resolution)


class AlbMetricsRecorder(rounds.Periodic):
    """Every replica records what its own listeners served; the host counts only while it leads."""

    def __init__(self, plane: ControlPlane, period_s: float, leading: Callable[[], bool] = lambda: True) -> None:
        super().__init__(period_s, "metrics round", log)
        self.plane = plane
        self.leading = leading
        self.resolution = resolution_for(period_s)
        self._sampler: ProxySampler | None = None

    def start(self) -> None:
        self._sampler = ProxySampler(self.plane.lb)
        super().start()

    def round(self) -> None:
        self.tick(self.plane.clock())

    def tick(self, now: float) -> None:
        if self._sampler is None:
            self._sampler = ProxySampler(self.plane.lb)
            return
        measured = self._sampler.measure()
        if not self.leading():
            measured = [m for m in measured if m.metric_name not in LEADER_ONLY]
        with self.plane.store.transaction():
            record(self.plane.store, self.plane.config.region, measured, now - self.period_s / 2, self.resolution)


class MetricsRetention(rounds.Periodic):
    """The leader deletes datapoints older than ``--metrics-retention``, every ``TRIM_INTERVAL_S``."""

    def __init__(self, plane: ControlPlane, retention_s: float = DEFAULT_METRICS_RETENTION_S) -> None:
        super().__init__(min(TRIM_INTERVAL_S, retention_s), "metrics trim", log)
        self.plane = plane
        self.retention_s = retention_s

    def round(self) -> None:
        self.trim(self.plane.clock())

    def trim(self, now: float) -> int:
        with self.plane.store.transaction():
            before = now - self.retention_s
            return self.plane.store.trim_metrics(before) + self.plane.store.trim_distributions(before)
