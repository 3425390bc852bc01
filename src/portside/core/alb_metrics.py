"""What the load balancer measured in one period, as CloudWatch's ``AWS/ApplicationELB`` metrics.

Pure: the caller samples the proxy's cumulative counters at the end of each period and passes
this sample and the previous one; the result is one statistic set per (metric, dimensions), in
AWS's names, dimension sets and units:

- per load balancer (``LoadBalancer=app/<name>/<id>``): RequestCount, HTTPCode_ELB_4XX_Count,
  HTTPCode_ELB_5XX_Count, HTTPCode_Target_2XX..5XX_Count, TargetResponseTime, ActiveConnectionCount;
- per target group (``TargetGroup=targetgroup/<name>/<id>, LoadBalancer=...``): RequestCount,
  RequestCountPerTarget, HTTPCode_Target_2XX..5XX_Count, TargetResponseTime, HealthyHostCount,
  UnHealthyHostCount.

Counts are one sample holding the period's count (so ``Sum`` is the count, as on AWS), and a
zero is recorded for a period with no requests, so a quiet load balancer reads 0, not "no data".
TargetResponseTime holds one sample per response (its ``Average`` is the mean latency, its
``Maximum`` the slowest) and their distribution, for percentiles such as ``p99``. Host counts and
connections are gauges sampled once per period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from portside.core import metric_distribution as distribution
from portside.core.metric_data import StatisticSet

NAMESPACE = "AWS/ApplicationELB"
TARGET_CLASSES = (2, 3, 4, 5)


@dataclass(frozen=True)
class GroupSample:
    """A target group's cumulative counters, and its gauges now."""

    requests: int = 0
    by_code: Mapping[int, int] = field(default_factory=dict)
    latency_count: int = 0
    latency_sum_s: float = 0.0
    # the fastest and slowest response since the previous sample (None: none)
    latency_min_s: float | None = None
    latency_max_s: float | None = None
    healthy: int = 0
    unhealthy: int = 0
    # responses per latency bucket since the previous sample (core/metric_distribution.py)
    latency_buckets: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadBalancerSample:
    """A load balancer's cumulative counters over its listeners, and its connections now."""

    requests: int = 0
    elb_errors: Mapping[int, int] = field(default_factory=dict)
    connections: int = 0


@dataclass(frozen=True)
class Measurement:
    metric_name: str
    dimensions: dict[str, str]
    stats: StatisticSet
    unit: str
    distribution: dict[int, float] | None = None  # for percentiles (TargetResponseTime)


def dimension_value(arn: str) -> str:
    """AWS's dimension value of a load balancer or target group: its ARN after ``:loadbalancer/`` or ``:``."""
    resource = arn.split(":", 5)[-1]
    return resource[len("loadbalancer/") :] if resource.startswith("loadbalancer/") else resource


def _delta(now: int | float, before: int | float | None) -> float:
    """How much a counter grew; a counter that went back (a restart, a new group) counts from 0."""
    if before is None or now < before:
        return float(now)
    return float(now - before)


def _by_class(now: Mapping[int, int], before: Mapping[int, int] | None) -> dict[int, float]:
    counts = dict.fromkeys(TARGET_CLASSES, 0.0)
    for code, count in now.items():
        klass = code // 100
        if klass in counts:
            counts[klass] += _delta(count, (before or {}).get(code))
    return counts


def _count(value: float) -> StatisticSet:
    return StatisticSet.of(value)


def measurements(
    balancers: Mapping[str, LoadBalancerSample],
    groups: Mapping[str, GroupSample],
    group_balancer: Mapping[str, str],
    previous_balancers: Mapping[str, LoadBalancerSample],
    previous_groups: Mapping[str, GroupSample],
) -> list[Measurement]:
    """The period's measurements. ``group_balancer``: target group ARN -> the load balancer ARN
    whose listeners forward to it (groups no listener uses are not measured, as on AWS)."""
    out: list[Measurement] = []
    lb_totals: dict[str, dict[str, float]] = {}
    lb_latency: dict[str, list[StatisticSet]] = {}
    lb_buckets: dict[str, dict[int, float]] = {}
    for group_arn, lb_arn in sorted(group_balancer.items()):
        sample = groups.get(group_arn)
        if sample is None:
            continue
        before = previous_groups.get(group_arn)
        dims = {"TargetGroup": dimension_value(group_arn), "LoadBalancer": dimension_value(lb_arn)}
        requests = _delta(sample.requests, before.requests if before else None)
        out.append(Measurement("RequestCount", dims, _count(requests), "Count"))
        targets = sample.healthy or (sample.healthy + sample.unhealthy)
        out.append(Measurement("RequestCountPerTarget", dims, _count(requests / targets if targets else requests), "Count"))
        totals = lb_totals.setdefault(lb_arn, {})
        for klass, count in _by_class(sample.by_code, before.by_code if before else None).items():
            name = f"HTTPCode_Target_{klass}XX_Count"
            out.append(Measurement(name, dims, _count(count), "Count"))
            totals[name] = totals.get(name, 0.0) + count
        latency = _latency(sample, before)
        if latency is not None:
            buckets = {key: float(count) for key, count in sample.latency_buckets.items()}
            out.append(Measurement("TargetResponseTime", dims, latency, "Seconds", buckets or None))
            lb_latency.setdefault(lb_arn, []).append(latency)
            distribution.merge(lb_buckets.setdefault(lb_arn, {}), buckets)
        out.append(Measurement("HealthyHostCount", dims, _count(float(sample.healthy)), "Count"))
        out.append(Measurement("UnHealthyHostCount", dims, _count(float(sample.unhealthy)), "Count"))
    for lb_arn, lb_sample in sorted(balancers.items()):
        before_lb = previous_balancers.get(lb_arn)
        dims = {"LoadBalancer": dimension_value(lb_arn)}
        out.append(Measurement("RequestCount", dims, _count(_delta(lb_sample.requests, before_lb.requests if before_lb else None)), "Count"))
        elb = dict.fromkeys((4, 5), 0.0)
        for code, count in lb_sample.elb_errors.items():
            if code // 100 in elb:
                elb[code // 100] += _delta(count, (before_lb.elb_errors if before_lb else {}).get(code))
        for klass, count in elb.items():
            out.append(Measurement(f"HTTPCode_ELB_{klass}XX_Count", dims, _count(count), "Count"))
        totals = lb_totals.get(lb_arn, {})
        for klass in TARGET_CLASSES:
            name = f"HTTPCode_Target_{klass}XX_Count"
            out.append(Measurement(name, dims, _count(totals.get(name, 0.0)), "Count"))
        latencies = lb_latency.get(lb_arn)
        if latencies:
            merged = latencies[0]
            for item in latencies[1:]:
                merged = StatisticSet(merged.sample_count + item.sample_count, merged.sum + item.sum,
                                      min(merged.minimum, item.minimum), max(merged.maximum, item.maximum))
            out.append(Measurement("TargetResponseTime", dims, merged, "Seconds", lb_buckets.get(lb_arn) or None))
        out.append(Measurement("ActiveConnectionCount", dims, _count(float(lb_sample.connections)), "Count"))
    return out


def _latency(sample: GroupSample, before: GroupSample | None) -> StatisticSet | None:
    count = _delta(sample.latency_count, before.latency_count if before else None)
    if count <= 0:
        return None
    total = _delta(sample.latency_sum_s, before.latency_sum_s if before else None)
    mean = total / count
    low = sample.latency_min_s if sample.latency_min_s is not None else mean
    high = sample.latency_max_s if sample.latency_max_s is not None else mean
    return StatisticSet(count, total, low, high)
