"""The store's metric datapoints (store/metrics.py) on both backends: buckets merge statistic sets."""

from __future__ import annotations

from portside.core.metric_data import StatisticSet, statistic_sets
from tests.support.stores import StoreFactory

REGION = "us-east-1"
DIMS = {"TargetGroup": "targetgroup/web/1", "LoadBalancer": "app/front/2"}


def test_values_in_one_bucket_merge_into_one_statistic_set(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        for at, value in ((120.0, 4.0), (150.5, 1.0), (179.9, 10.0), (180.0, 7.0)):
            store.record_metric(REGION, "AWS/ApplicationELB", "RequestCount", DIMS, at, StatisticSet.of(value), "Count")
    points = store.metric_datapoints(REGION, "AWS/ApplicationELB", "RequestCount", dict(reversed(DIMS.items())), 0, 600)
    assert [(p.ts, p.stats) for p in points] == [
        (120, StatisticSet(3.0, 15.0, 1.0, 10.0)),
        (180, StatisticSet(1.0, 7.0, 7.0, 7.0)),
    ]
    assert points[0].unit == "Count" and points[0].resolution == 60
    assert store.metric_datapoints(REGION, "AWS/ApplicationELB", "RequestCount", {"TargetGroup": "x"}, 0, 600) == []
    assert store.metric_datapoints(REGION, "AWS/ApplicationELB", "RequestCount", DIMS, 121, 600)[0].ts == 180


def test_metric_keys_and_trimming(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        store.record_metric(REGION, "AWS/ECS", "CPUUtilization", {"ClusterName": "c"}, 60, StatisticSet.of(1))
        store.record_metric(REGION, "Custom", "Orders", {}, 7200, statistic_sets([1, 2, 3]) or StatisticSet.of(0), resolution=1)
    assert store.metric_keys(REGION) == [("AWS/ECS", "CPUUtilization", {"ClusterName": "c"}), ("Custom", "Orders", {})]
    assert store.metric_keys(REGION, "Custom", since=3600) == [("Custom", "Orders", {})]
    assert store.metric_keys("eu-west-1") == []
    with store.transaction():
        assert store.trim_metrics(before=3600) == 1
    assert store.metric_keys(REGION) == [("Custom", "Orders", {})]
    assert store.metric_datapoints(REGION, "Custom", "Orders", {}, 0, 10_000)[0].stats == StatisticSet(3, 6, 1, 3)
