"""Desired and running task counts of every service, recorded for the dashboard's charts.

ECS keeps no metric of a service's task counts (the console draws them from Container Insights),
so the leader records its own each ``ROUND_S`` into the metric store, in the custom namespace
``Portside/ECS``: ``DesiredTaskCount`` and ``RunningTaskCount`` (unit Count, dimensions
``ClusterName`` and ``ServiceName``, one-minute buckets whose average is the minute's count).
CloudWatch's GetMetricStatistics reads them like any custom metric.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from portside.control import rounds
from portside.control.plane import ControlPlane
from portside.core.metric_data import StatisticSet
from portside.core.task import Task

log = logging.getLogger("portside.task_counts")

NAMESPACE = "Portside/ECS"
DESIRED_METRIC = "DesiredTaskCount"
RUNNING_METRIC = "RunningTaskCount"
UNIT = "Count"
RESOLUTION_S = 60
ROUND_S = 15.0
SERVICE_GROUP_PREFIX = "service:"


def task_counts(services: Iterable[dict[str, Any]], tasks: Iterable[Task]) -> list[tuple[str, dict[str, str], int, int]]:
    """(region, dimensions, desired, running) for each ACTIVE service: RUNNING tasks that should run."""
    running: Counter[tuple[str, str, str]] = Counter(
        (t.region, t.cluster, t.group[len(SERVICE_GROUP_PREFIX):])
        for t in tasks
        if t.group and t.group.startswith(SERVICE_GROUP_PREFIX) and t.desired_status == "RUNNING"
        and t.last_status.name == "RUNNING"
    )
    out = []
    for service in services:
        if service.get("status") != "ACTIVE":
            continue
        region = service["serviceArn"].split(":")[3]
        cluster = service["clusterArn"].rsplit("/", 1)[-1]
        name = service["serviceName"]
        dims = {"ClusterName": cluster, "ServiceName": name}
        out.append((region, dims, int(service.get("desiredCount", 0)), running[(region, cluster, name)]))
    return out


class TaskCountRecorder(rounds.Periodic):
    def __init__(self, plane: ControlPlane, period_s: float = ROUND_S) -> None:
        super().__init__(period_s, "task count round", log)
        self.plane = plane

    def round(self) -> None:
        self.tick()

    def tick(self) -> None:
        store = self.plane.store
        now = self.plane.clock()
        counts = task_counts(store.list_services(status="ACTIVE"), store.live_tasks())
        with store.transaction():
            for region, dims, desired, running in counts:
                for metric, value in ((DESIRED_METRIC, desired), (RUNNING_METRIC, running)):
                    store.record_metric(region, NAMESPACE, metric, dims, now, StatisticSet.of(float(value)), UNIT, RESOLUTION_S)
