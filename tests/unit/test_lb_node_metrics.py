"""A load-balancer node's metrics reports (lb_node_metrics.py): sent each period, kept and resent
with their age while the control plane is unreachable, dropped when refused or too many."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from portside import lb_node_metrics
from portside.agent.link import LinkError, LinkRefused

LB = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"
TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/fedcba9876543210"


class Group:
    def __init__(self) -> None:
        self.requests, self.by_code, self.latency_counts, self.latency_sum_s = 0, {}, [0], 0.0
        self.targets = {("i-1", 80): SimpleNamespace(state="healthy", draining=False)}
        self.buckets: dict[int, int] = {}

    def take_latency_extremes(self) -> tuple[float, float] | None:
        return (0.01, 0.03) if self.buckets else None

    def take_latency_buckets(self) -> dict[int, int]:
        taken, self.buckets = self.buckets, {}
        return taken


class Link:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail: Exception | None = None

    async def report_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.sent.append(request)
        return {}


@pytest.fixture
def setup() -> tuple[lb_node_metrics.NodeMetricsReporter, Group, Any, Link]:
    group = Group()
    bound = SimpleNamespace(requests=0, elb_errors={}, connections=set())
    listener = SimpleNamespace(arn="l1", load_balancer_arn=LB, rules=[
        SimpleNamespace(actions=[SimpleNamespace(target_groups=[SimpleNamespace(arn=TG)])])])
    runtime = SimpleNamespace(config=SimpleNamespace(listeners=[listener]), listeners={"l1": bound}, groups={TG: group})
    link = Link()
    return lb_node_metrics.NodeMetricsReporter(link, runtime, period_s=60), group, bound, link


def requests(report: dict[str, Any]) -> float:
    return next(m["sum"] for m in report["measurements"]
                if m["metricName"] == "RequestCount" and list(m["dimensions"]) == ["LoadBalancer"])


def test_a_period_is_reported_without_the_leaders_host_counts(setup: Any) -> None:
    reporter, group, bound, link = setup
    group.requests = bound.requests = 4
    group.latency_counts, group.latency_sum_s, group.buckets = [4], 0.08, {-400: 4}
    asyncio.run(reporter.report(1000.0))
    [report] = link.sent
    assert report["periodSeconds"] == 60 and report["ageSeconds"] == 0 and requests(report) == 4
    names = {m["metricName"] for m in report["measurements"]}
    assert "HealthyHostCount" not in names and "UnHealthyHostCount" not in names
    latency = next(m for m in report["measurements"] if m["metricName"] == "TargetResponseTime")
    assert latency["distribution"] == {"-400": 4.0} and latency["sampleCount"] == 4


def test_reports_wait_out_an_outage_and_go_oldest_first_with_their_age(setup: Any) -> None:
    reporter, group, bound, link = setup
    link.fail = LinkError("unreachable")
    bound.requests = 2
    asyncio.run(reporter.report(1000.0))
    bound.requests = 5
    asyncio.run(reporter.report(1060.0))
    assert link.sent == [] and len(reporter.pending) == 2
    link.fail = None
    bound.requests = 6
    asyncio.run(reporter.report(1120.0))
    assert [(r["ageSeconds"], requests(r)) for r in link.sent] == [(120.0, 2), (60.0, 3), (0.0, 1)]
    assert not reporter.pending


def test_a_refused_report_is_dropped_not_resent(setup: Any) -> None:
    reporter, _, bound, link = setup
    link.fail = LinkRefused("ReportMetrics: HTTP 400")
    asyncio.run(reporter.report(1000.0))
    assert not reporter.pending
    link.fail = None
    asyncio.run(reporter.report(1060.0))
    assert len(link.sent) == 1


def test_at_most_max_pending_reports_are_kept(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reporter, _, _, link = setup
    monkeypatch.setattr(lb_node_metrics, "MAX_PENDING", 3)
    link.fail = LinkError("unreachable")
    for i in range(5):
        asyncio.run(reporter.report(1000.0 + 60 * i))
    assert len(reporter.pending) == 3 and reporter.dropped == 2
    assert [ended for ended, _ in reporter.pending] == [1120.0, 1180.0, 1240.0]
