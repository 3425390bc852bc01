"""The load balancer's period measurements as AWS/ApplicationELB metrics (core/alb_metrics.py), and
the --metrics-retention flag's rules (config.parse_retention)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from portside.config import parse_retention
from portside.core.metric_data import StatisticSet
from portside.core import alb_metrics as core

LB = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"
TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/fedcba9876543210"
LB_DIMS = {"LoadBalancer": "app/web/0123456789abcdef"}
TG_DIMS = {"TargetGroup": "targetgroup/web/fedcba9876543210", "LoadBalancer": "app/web/0123456789abcdef"}


def by_key(measured: list[core.Measurement]) -> dict[tuple[str, tuple[tuple[str, str], ...]], core.Measurement]:
    return {(m.metric_name, tuple(sorted(m.dimensions.items()))): m for m in measured}


def get(measured: list[core.Measurement], name: str, dims: dict[str, str]) -> core.Measurement:
    return by_key(measured)[(name, tuple(sorted(dims.items())))]


def test_dimension_values_are_the_arn_suffixes_aws_uses() -> None:
    assert core.dimension_value(LB) == "app/web/0123456789abcdef"
    assert core.dimension_value(TG) == "targetgroup/web/fedcba9876543210"


def test_a_period_is_what_the_counters_grew_by() -> None:
    before_groups = {TG: core.GroupSample(requests=10, by_code={200: 8, 404: 2}, latency_count=10, latency_sum_s=1.0)}
    before_lbs = {LB: core.LoadBalancerSample(requests=12, elb_errors={503: 2})}
    groups = {TG: core.GroupSample(requests=16, by_code={200: 12, 404: 3, 502: 1}, latency_count=16, latency_sum_s=1.6,
                                   latency_min_s=0.05, latency_max_s=0.2, healthy=2, unhealthy=1)}
    lbs = {LB: core.LoadBalancerSample(requests=20, elb_errors={503: 3, 400: 1}, connections=4)}
    measured = core.measurements(lbs, groups, {TG: LB}, before_lbs, before_groups)
    assert get(measured, "RequestCount", TG_DIMS).stats == StatisticSet.of(6.0)
    assert get(measured, "RequestCountPerTarget", TG_DIMS).stats == StatisticSet.of(3.0)  # 6 over 2 healthy
    assert get(measured, "HTTPCode_Target_2XX_Count", TG_DIMS).stats.sum == 4
    assert get(measured, "HTTPCode_Target_4XX_Count", TG_DIMS).stats.sum == 1
    assert get(measured, "HTTPCode_Target_5XX_Count", TG_DIMS).stats.sum == 1
    assert get(measured, "HTTPCode_Target_3XX_Count", TG_DIMS).stats.sum == 0
    latency = get(measured, "TargetResponseTime", TG_DIMS)
    assert latency.unit == "Seconds"
    assert (latency.stats.sample_count, round(latency.stats.sum, 9), latency.stats.minimum, latency.stats.maximum) == (6, 0.6, 0.05, 0.2)
    assert get(measured, "HealthyHostCount", TG_DIMS).stats.sum == 2
    assert get(measured, "UnHealthyHostCount", TG_DIMS).stats.sum == 1
    assert get(measured, "RequestCount", LB_DIMS).stats.sum == 8
    assert get(measured, "HTTPCode_ELB_5XX_Count", LB_DIMS).stats.sum == 1
    assert get(measured, "HTTPCode_ELB_4XX_Count", LB_DIMS).stats.sum == 1
    assert get(measured, "HTTPCode_Target_2XX_Count", LB_DIMS).stats.sum == 4
    assert get(measured, "TargetResponseTime", LB_DIMS).stats.sample_count == 6
    assert get(measured, "ActiveConnectionCount", LB_DIMS).stats.sum == 4
    assert all(m.unit == "Count" for m in measured if m.metric_name != "TargetResponseTime")


def test_a_quiet_period_reads_zero_and_has_no_response_time() -> None:
    sample = {TG: core.GroupSample(requests=5, latency_count=5, latency_sum_s=0.5)}
    lbs = {LB: core.LoadBalancerSample(requests=5)}
    measured = core.measurements(lbs, sample, {TG: LB}, lbs, sample)
    assert get(measured, "RequestCount", TG_DIMS).stats == StatisticSet.of(0.0)
    assert get(measured, "RequestCount", LB_DIMS).stats == StatisticSet.of(0.0)
    assert ("TargetResponseTime", tuple(sorted(TG_DIMS.items()))) not in by_key(measured)


def test_a_counter_that_went_back_counts_from_zero_and_unused_groups_are_not_measured() -> None:
    other = TG.replace("web", "spare")
    groups = {TG: core.GroupSample(requests=3), other: core.GroupSample(requests=9)}
    measured = core.measurements({}, groups, {TG: LB}, {}, {TG: core.GroupSample(requests=100)})
    assert get(measured, "RequestCount", TG_DIMS).stats.sum == 3
    assert not any("spare" in m.dimensions.get("TargetGroup", "") for m in measured)


def test_no_healthy_target_puts_every_request_on_the_unhealthy_ones() -> None:
    groups = {TG: core.GroupSample(requests=8, unhealthy=2)}
    measured = core.measurements({}, groups, {TG: LB}, {}, {TG: core.GroupSample()})
    assert get(measured, "RequestCountPerTarget", TG_DIMS).stats.sum == 4


@pytest.mark.parametrize(("text", "seconds"), [("15d", 15 * 86400), ("36h", 36 * 3600), ("90m", 5400), ("3600s", 3600), ("1.5d", 129600)])
def test_retention_durations(text: str, seconds: float) -> None:
    assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["15", "d", "-1d", "59m", "456d", "1w", ""])
def test_bad_retentions_are_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match="--metrics-retention"):
        parse_retention(text)


def test_the_server_refuses_a_bad_retention_before_starting(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--state-dir", str(tmp_path), "--metrics-retention", "10m"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--metrics-retention 10m" in result.stderr and "at least 1h" in result.stderr
