"""CloudWatch metric operations over a real store, on SQLite and on PostgreSQL (``store_at``).

Each call goes through what the endpoint does for any protocol: the botocore model's validation
(shapes.validate_input), then the operation from api/cloudwatch.py's table. The plane is only
what the operations read (the store and a clock the test sets); the wire protocols are covered
in test_cloudwatch_protocols.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from portside.api import cloudwatch, shapes
from portside.control.controllers.alb_metrics import AlbMetricsRecorder, MetricsRetention
from portside.core.metric_data import StatisticSet
from portside.errors import PortsideError
from tests.support.stores import StoreFactory

NOW = 1_780_000_020.0  # a minute boundary + 20 s
NS = "Shop"
REGION = "us-east-1"


@pytest.fixture
def plane(store_at: StoreFactory) -> Any:
    return SimpleNamespace(store=store_at(), clock=lambda: NOW, config=SimpleNamespace(region=REGION), lb=None)


def call(plane: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    shapes.validate_input(shapes.operation_model(cloudwatch.SERVICE, action), params)
    return cloudwatch.OPERATIONS[action](plane, REGION, params)


def refused(plane: Any, action: str, params: dict[str, Any]) -> PortsideError:
    with pytest.raises(PortsideError) as caught:
        call(plane, action, params)
    return caught.value


def put(plane: Any, name: str, *, dims: dict[str, str] | None = None, **datum: Any) -> None:
    entry = {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in (dims or {}).items()], **datum}
    call(plane, "PutMetricData", {"Namespace": NS, "MetricData": [entry]})


def stats(plane: Any, name: str, period: int = 60, dims: dict[str, str] | None = None, **extra: Any) -> list[dict[str, Any]]:
    params = {"Namespace": NS, "MetricName": name, "StartTime": NOW - 3600, "EndTime": NOW + 60, "Period": period,
              "Dimensions": [{"Name": k, "Value": v} for k, v in (dims or {}).items()],
              "Statistics": ["SampleCount", "Sum", "Minimum", "Maximum", "Average"], **extra}
    return call(plane, "GetMetricStatistics", params)["Datapoints"]


# -- PutMetricData


def test_values_with_counts_and_statistic_sets_merge_into_one_bucket(plane: Any) -> None:
    put(plane, "Latency", Value=4.0, Unit="Milliseconds")
    put(plane, "Latency", Values=[1.0, 10.0, 99.0], Counts=[3.0, 1.0, 0.0], Unit="Milliseconds")
    put(plane, "Latency", StatisticValues={"SampleCount": 2, "Sum": 6, "Minimum": 2, "Maximum": 4}, Unit="Milliseconds")
    [point] = stats(plane, "Latency")
    assert point["SampleCount"] == 1 + 4 + 2 and point["Sum"] == 4 + 13 + 6
    assert (point["Minimum"], point["Maximum"], point["Unit"]) == (1.0, 10.0, "Milliseconds")
    assert point["Timestamp"] == datetime.fromtimestamp(NOW // 60 * 60, tz=UTC)


def test_dimensions_tell_metrics_apart_in_any_order(plane: Any) -> None:
    put(plane, "Hits", dims={"A": "1", "B": "2"}, Value=1.0)
    put(plane, "Hits", dims={"B": "2", "A": "1"}, Value=2.0)
    put(plane, "Hits", dims={"A": "1"}, Value=50.0)
    assert stats(plane, "Hits", dims={"A": "1", "B": "2"})[0]["Sum"] == 3.0
    assert stats(plane, "Hits", dims={"A": "1"})[0]["Sum"] == 50.0
    assert stats(plane, "Hits") == []


def test_high_resolution_data_reads_at_one_second(plane: Any) -> None:
    put(plane, "Fast", Value=1.0, StorageResolution=1, Timestamp=NOW - 5)
    put(plane, "Fast", Value=2.0, StorageResolution=1, Timestamp=NOW - 3)
    assert [p["Sum"] for p in stats(plane, "Fast", period=1, StartTime=NOW - 600)] == [1.0, 2.0]
    assert [p["Sum"] for p in stats(plane, "Fast", period=60)] == [3.0]


@pytest.mark.parametrize(("datum", "code", "names"), [
    ({"Value": 1.0, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}, "InvalidParameterCombination", "StatisticValues"),
    ({}, "MissingParameter", "MetricData.member.1.Value"),
    ({"Values": [1.0, 2.0], "Counts": [1.0]}, "InvalidParameterCombination", "Counts"),
    ({"Value": 1.0, "Counts": [1.0]}, "InvalidParameterCombination", "Counts"),
    ({"Values": [1.0], "Counts": [-1.0]}, "InvalidParameterValue", "Counts"),
    ({"Values": [float(i) for i in range(151)]}, "InvalidParameterValue", "Values"),
    ({"Value": 1.0, "StorageResolution": 30}, "InvalidParameterValue", "StorageResolution"),
    ({"Value": 1.0, "Timestamp": NOW - 15 * 86400}, "InvalidParameterValue", "two weeks"),
    ({"Value": 1.0, "Timestamp": NOW + 3 * 3600}, "InvalidParameterValue", "two hours"),
    ({"StatisticValues": {"SampleCount": 0, "Sum": 1, "Minimum": 1, "Maximum": 1}}, "InvalidParameterValue", "SampleCount"),
    ({"StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 3, "Maximum": 1}}, "InvalidParameterValue", "Minimum"),
    ({"Value": 1.0, "Dimensions": [{"Name": "A", "Value": "1"}, {"Name": "A", "Value": "2"}]}, "InvalidParameterValue", "Dimensions"),
    ({"Value": 1.0, "Unit": "Parsecs"}, "ValidationError", "unit"),
])
def test_bad_data_is_refused_naming_the_field_and_nothing_is_written(
    plane: Any, datum: dict[str, Any], code: str, names: str
) -> None:
    good = {"MetricName": "Ok", "Value": 1.0}
    error = refused(plane, "PutMetricData", {"Namespace": NS, "MetricData": [{"MetricName": "Bad", **datum}, good]})
    assert error.code == code and names in error.message, error.message
    assert error.status_hint == 400
    assert plane.store.metric_keys(REGION) == []


@pytest.mark.parametrize(("namespace", "code"), [
    ("AWS/ApplicationELB", "InvalidParameterValue"), ("bad$name", "InvalidParameterValue"), (" padded", "InvalidParameterValue"),
    ("", "ValidationError"),
])
def test_reserved_and_malformed_namespaces_are_refused(plane: Any, namespace: str, code: str) -> None:
    error = refused(plane, "PutMetricData", {"Namespace": namespace, "MetricData": [{"MetricName": "X", "Value": 1.0}]})
    assert error.code == code
    assert plane.store.metric_keys(REGION) == []


def test_entity_metric_data_is_refused_by_name(plane: Any) -> None:
    error = refused(plane, "PutMetricData", {"Namespace": NS, "EntityMetricData": [
        {"MetricData": [{"MetricName": "X", "Value": 1.0}]}]})
    assert "EntityMetricData" in error.message


# -- GetMetricStatistics


def test_statistics_merge_buckets_into_the_period_and_filter_by_unit(plane: Any) -> None:
    for minutes, value in ((3, 1.0), (2, 2.0), (1, 3.0)):
        put(plane, "Work", Value=value, Timestamp=NOW - minutes * 60, Unit="Count")
    put(plane, "Work", Value=100.0, Timestamp=NOW - 60, Unit="Seconds", dims={"Other": "unit"})
    periods = stats(plane, "Work", period=3600)  # one hour holds all three minutes
    assert len(periods) == 1 and periods[0]["Sum"] == 6.0 and periods[0]["Average"] == 2.0
    assert stats(plane, "Work", Unit="Seconds") == []
    assert len(stats(plane, "Work", Unit="Count")) == 3


@pytest.mark.parametrize(("change", "code", "names"), [
    ({"Period": 45}, "InvalidParameterValue", "Period"),
    ({"Period": 0}, "ValidationError", "period"),
    ({"StartTime": NOW + 60, "EndTime": NOW}, "InvalidParameterValue", "StartTime"),
    ({"Statistics": []}, "ValidationError", "statistics"),
    ({"Statistics": None}, "InvalidParameterCombination", "Statistics"),
    ({"ExtendedStatistics": ["p99"]}, "InvalidParameterCombination", "ExtendedStatistics"),
    ({"ExtendedStatistics": ["p101"], "Statistics": None}, "InvalidParameterValue", "ExtendedStatistics.member.1"),
    ({"ExtendedStatistics": ["tm99"], "Statistics": None}, "InvalidParameterValue", "percentile"),
    ({"Period": 1, "StartTime": NOW - 7200}, "InvalidParameterCombination", "1440"),
])
def test_get_metric_statistics_rules(plane: Any, change: dict[str, Any], code: str, names: str) -> None:
    params = {"Namespace": NS, "MetricName": "X", "StartTime": NOW - 600, "EndTime": NOW, "Period": 60,
              "Statistics": ["Sum"], **change}
    params = {k: v for k, v in params.items() if v is not None}
    error = refused(plane, "GetMetricStatistics", params)
    assert error.code == code and names in error.message, error.message


def test_percentiles_come_from_values_within_a_percent(plane: Any) -> None:
    put(plane, "Lat", Values=[float(v) for v in range(1, 101)], Unit="Milliseconds")
    put(plane, "Lat", Values=[1000.0], Counts=[0.0])  # a zero count adds nothing
    [point] = stats(plane, "Lat", Statistics=None, ExtendedStatistics=["p50", "p99", "p100", "p0"])
    extended = point["ExtendedStatistics"]
    assert "Sum" not in point
    assert abs(extended["p50"] - 50) <= 0.5 + 1 and abs(extended["p99"] - 99) <= 1.0
    assert extended["p100"] == 100.0 and extended["p0"] == 1.0
    put(plane, "Sets", StatisticValues={"SampleCount": 2, "Sum": 3, "Minimum": 1, "Maximum": 2})
    [only_sets] = stats(plane, "Sets", Statistics=None, ExtendedStatistics=["p99"])
    assert only_sets["ExtendedStatistics"] == {}  # a statistic set has no distribution
    result = call(plane, "GetMetricData", {"MetricDataQueries": [_query("lat", "Lat", stat="p90"), _query("sets", "Sets", stat="p90")],
                                           "StartTime": NOW - 600, "EndTime": NOW + 60})["MetricDataResults"]
    assert abs(result[0]["Values"][0] - 90) <= 1.0
    assert result[1]["Values"] == []


# -- GetMetricData


def _query(qid: str, name: str, stat: str = "Sum", period: int = 60, **extra: Any) -> dict[str, Any]:
    return {"Id": qid, "MetricStat": {"Metric": {"Namespace": NS, "MetricName": name}, "Period": period, "Stat": stat}, **extra}


def test_get_metric_data_scans_newest_first_and_pages_by_max_datapoints(plane: Any) -> None:
    for minutes in range(5):
        put(plane, "Seq", Value=float(minutes), Timestamp=NOW - minutes * 60)
    put(plane, "Other", Value=7.0)
    window = {"StartTime": NOW - 3600, "EndTime": NOW + 60}
    full = call(plane, "GetMetricData", {"MetricDataQueries": [_query("seq", "Seq"), _query("hidden", "Other", ReturnData=False)], **window})
    [seq] = full["MetricDataResults"]
    assert seq["Values"] == [0.0, 1.0, 2.0, 3.0, 4.0] and seq["StatusCode"] == "Complete" and seq["Label"] == "Seq"
    assert seq["Timestamps"] == sorted(seq["Timestamps"], reverse=True)
    ascending = call(plane, "GetMetricData", {"MetricDataQueries": [_query("seq", "Seq")], "ScanBy": "TimestampAscending", **window})
    assert ascending["MetricDataResults"][0]["Values"] == [4.0, 3.0, 2.0, 1.0, 0.0]
    seen: list[float] = []
    token = None
    for _ in range(10):
        page = call(plane, "GetMetricData", {"MetricDataQueries": [_query("seq", "Seq"), _query("other", "Other", Label="o")],
                                             "MaxDatapoints": 2, **window, **({"NextToken": token} if token else {})})
        assert sum(len(r["Values"]) for r in page["MetricDataResults"]) <= 2
        seen += [v for r in page["MetricDataResults"] for v in r["Values"]]
        token = page.get("NextToken")
        if token is None:
            break
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0, 7.0]


@pytest.mark.parametrize(("queries", "code", "names"), [
    ([_query("Upper", "X")], "InvalidParameterValue", "Id"),
    ([_query("a", "X"), _query("a", "Y")], "InvalidParameterValue", "unique"),
    ([{"Id": "e", "Expression": "SUM(METRICS())"}], "InvalidParameterValue", "Expression"),
    ([{**_query("e", "X"), "Expression": "m1 * 2"}], "InvalidParameterCombination", "Expression"),
    ([{"Id": "n"}], "MissingParameter", "MetricStat"),
    ([_query("p", "X", stat="tm99")], "InvalidParameterValue", "Stat"),
    ([_query("s", "X", stat="Median")], "InvalidParameterValue", "Stat"),
    ([_query("s", "X", period=90)], "InvalidParameterValue", "Period"),
    ([_query("s", "X", ReturnData=False)], "InvalidParameterValue", "ReturnData"),
    ([_query("s", "X", AccountId="123456789012")], "InvalidParameterValue", "AccountId"),
])
def test_get_metric_data_rules(plane: Any, queries: list[dict[str, Any]], code: str, names: str) -> None:
    error = refused(plane, "GetMetricData", {"MetricDataQueries": queries, "StartTime": NOW - 600, "EndTime": NOW})
    assert error.code == code and names in error.message, error.message


def test_a_next_token_not_given_out_is_refused(plane: Any) -> None:
    for token in ("garbage", "eyJvZmZzZXQiOiAtMX0=", "eyJvZmZzZXQiOiA5OTl9"):  # junk, offset -1, past the end
        error = refused(plane, "GetMetricData", {"MetricDataQueries": [_query("a", "X")], "StartTime": NOW - 600,
                                                 "EndTime": NOW, "NextToken": token})
        assert error.code == "InvalidNextToken"
    assert refused(plane, "ListMetrics", {"NextToken": "garbage"}).code == "InvalidNextToken"


# -- ListMetrics


def test_list_metrics_filters_by_namespace_name_dimensions_and_recent_activity(plane: Any) -> None:
    put(plane, "Hits", dims={"Host": "a", "Zone": "z1"}, Value=1.0)
    put(plane, "Hits", dims={"Host": "b"}, Value=1.0, Timestamp=NOW - 5 * 3600)
    put(plane, "Errors", dims={"Host": "a"}, Value=1.0)
    call(plane, "PutMetricData", {"Namespace": "Elsewhere", "MetricData": [{"MetricName": "Hits", "Value": 1.0}]})

    def names(**params: Any) -> list[tuple[str, str, list[dict[str, str]]]]:
        return [(m["Namespace"], m["MetricName"], m["Dimensions"]) for m in call(plane, "ListMetrics", params)["Metrics"]]

    assert len(names()) == 4
    assert [n[0] for n in names(MetricName="Hits")].count("Elsewhere") == 1
    assert names(Namespace=NS, Dimensions=[{"Name": "Host", "Value": "a"}]) == [
        (NS, "Errors", [{"Name": "Host", "Value": "a"}]),
        (NS, "Hits", [{"Name": "Host", "Value": "a"}, {"Name": "Zone", "Value": "z1"}]),
    ]
    assert [n[1] for n in names(Namespace=NS, Dimensions=[{"Name": "Zone"}])] == ["Hits"]
    assert len(names(Namespace=NS, RecentlyActive="PT3H")) == 2
    assert refused(plane, "ListMetrics", {"IncludeLinkedAccounts": True}).code == "InvalidParameterValue"


def test_list_metrics_pages_by_five_hundred(plane: Any) -> None:
    call(plane, "PutMetricData", {"Namespace": NS, "MetricData": [
        {"MetricName": f"m{i:04d}", "Value": 1.0} for i in range(501)]})
    first = call(plane, "ListMetrics", {"Namespace": NS})
    assert len(first["Metrics"]) == 500 and "NextToken" in first
    second = call(plane, "ListMetrics", {"Namespace": NS, "NextToken": first["NextToken"]})
    assert [m["MetricName"] for m in second["Metrics"]] == ["m0500"] and "NextToken" not in second


# -- retention


def test_the_recorder_trims_datapoints_older_than_the_retention(plane: Any) -> None:
    plane.store.record_metric(REGION, NS, "Old", {}, NOW - 2 * 3600, StatisticSet.of(1.0))
    plane.store.record_distribution(REGION, NS, "Old", {}, NOW - 2 * 3600, {2: 1.0})
    plane.store.record_metric(REGION, NS, "New", {}, NOW - 60, StatisticSet.of(1.0))
    plane.store.record_distribution(REGION, NS, "New", {}, NOW - 60, {2: 1.0})
    assert MetricsRetention(plane, retention_s=3600).trim(NOW) == 2
    assert [name for _, name, _ in plane.store.metric_keys(REGION)] == ["New"]
    assert plane.store.metric_distributions(REGION, NS, "Old", {}, 0, NOW + 60) == {}
    assert plane.store.metric_distributions(REGION, NS, "New", {}, 0, NOW + 60) == {int(NOW - 60) // 60 * 60: {2: 1.0}}


# -- recording the load balancer's metrics


class _Group:
    """A target group's counters as the proxy keeps them (proxy/targets.py GroupRuntime's metrics)."""

    def __init__(self) -> None:
        self.requests, self.by_code, self.latency_counts, self.latency_sum_s = 0, {}, [0], 0.0
        self.targets = {("i-1", 80): SimpleNamespace(state="healthy", draining=False)}

    def take_latency_extremes(self) -> None:
        return None

    def take_latency_buckets(self) -> dict[int, int]:
        return {}


LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/fedcba9876543210"


@pytest.mark.parametrize("leading", [True, False])
def test_every_replica_records_its_listeners_and_only_the_leader_the_host_counts(plane: Any, leading: bool) -> None:
    group = _Group()
    bound = SimpleNamespace(requests=0, elb_errors={}, connections=set())
    listener = SimpleNamespace(arn="l1", load_balancer_arn=LB_ARN, rules=[
        SimpleNamespace(actions=[SimpleNamespace(target_groups=[SimpleNamespace(arn=TG_ARN)])])])
    plane.lb = SimpleNamespace(config=SimpleNamespace(listeners=[listener]), listeners={"l1": bound}, groups={TG_ARN: group})
    recorder = AlbMetricsRecorder(plane, period_s=60, leading=lambda: leading)
    recorder.tick(NOW)  # the baseline
    group.requests, bound.requests = 7, 7
    recorder.tick(NOW)
    names = {name for namespace, name, _ in plane.store.metric_keys(REGION) if namespace == "AWS/ApplicationELB"}
    assert "RequestCount" in names and "HTTPCode_ELB_5XX_Count" in names
    assert ("HealthyHostCount" in names) is leading
    [point] = plane.store.metric_datapoints(REGION, "AWS/ApplicationELB", "RequestCount", {"LoadBalancer": "app/web/0123456789abcdef"}, 0, 2e9)
    assert point.stats.sum == 7
