"""A ``portside lb`` node's CloudWatch metrics: what its listeners served, reported every period.

Every ``--metrics-period`` seconds (60 by default) the node turns the growth of its proxy's
counters into ``AWS/ApplicationELB`` measurements (proxy/cloudwatch_sample.py, without the host
counts, which the leader records from its own health view) and sends them to the control plane
(``PortsideAgent.ReportMetrics``, control/metric_reports.py), which merges them into the buckets
the leader records into. A report the control plane cannot take (unreachable) is kept and sent
again, oldest first, with its age, up to ``MAX_PENDING`` reports; beyond that the oldest go, and
the node says so in its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from portside.agent.link import LinkError, LinkRefused
from portside.core import alb_metrics as core
from portside.proxy.cloudwatch_sample import ProxySampler

log = logging.getLogger("portside.lb.metrics")

DEFAULT_PERIOD_S = 60.0
MAX_PENDING = 120


def wire(measurement: core.Measurement) -> dict[str, Any]:
    stats = measurement.stats
    item: dict[str, Any] = {
        "metricName": measurement.metric_name, "dimensions": measurement.dimensions, "unit": measurement.unit,
        "sampleCount": stats.sample_count, "sum": stats.sum, "minimum": stats.minimum, "maximum": stats.maximum,
    }
    if measurement.distribution:
        item["distribution"] = {str(k): v for k, v in measurement.distribution.items()}
    return item


class NodeMetricsReporter:
    def __init__(self, link: Any, runtime: Any, period_s: float = DEFAULT_PERIOD_S) -> None:
        self.link = link
        self.period_s = period_s
        self.sampler = ProxySampler(runtime, gauges=False)
        self.pending: deque[tuple[float, list[dict[str, Any]]]] = deque()  # (period end, measurements)
        self.dropped = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            await self.report(time.time())

    async def report(self, now: float) -> None:
        """Measure the period that just ended and send it (with any reports still pending)."""
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            self.dropped += 1
            log.warning("control plane unreachable for %d periods: dropped the oldest metrics report", MAX_PENDING)
        self.pending.append((now, [wire(m) for m in self.sampler.measure()]))
        while self.pending:
            ended, measurements = self.pending[0]
            request = {"periodSeconds": self.period_s, "ageSeconds": max(0.0, now - ended), "measurements": measurements}
            try:
                await self.link.report_metrics(request)
            except LinkRefused as exc:  # sending it again would be refused again
                log.warning("metrics report refused by the control plane: %s", exc)
            except LinkError as exc:
                log.debug("metrics report kept for later: %s", exc)
                return
            self.pending.popleft()
