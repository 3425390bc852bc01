"""What the dashboard reads from a real SQLite store (ui/collect.py) and the task counts the leader
records for its desired-vs-running chart (control/controllers/task_counts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.control import services, task_definitions
from portside.control.controllers.task_counts import TaskCountRecorder, task_counts
from portside.control.plane import ControlPlane
from portside.core.lifecycle import TaskStatus
from portside.ui import views
from portside.ui.collect import collect
from tests.support.agent_tasks import make_task
from tests.unit.test_usage_reports import REGION, make_plane, register


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = make_plane(tmp_path, 60.0)
    yield plane
    plane.store.close()


def _service(plane: ControlPlane, name: str, desired: int) -> None:
    task_definitions.register(plane, REGION, {"family": name, "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 16}]})
    services.create_service(plane, REGION, {"serviceName": name, "taskDefinition": name, "desiredCount": desired})


def _run(plane: ControlPlane, instance: str, group: str, status: TaskStatus = TaskStatus.RUNNING) -> None:
    task = make_task(instance, group=group)
    task.last_status = status
    plane.store.put_task(task)


def test_task_counts_count_running_copies_that_should_run(plane: ControlPlane) -> None:
    instance = register(plane)
    _service(plane, "web", 3)
    _service(plane, "idle", 0)
    _run(plane, instance, "service:web")
    _run(plane, instance, "service:web", TaskStatus.PENDING)
    _run(plane, instance, "family:web")  # a standalone task of the same family is no copy of the service
    counts = task_counts(plane.store.list_services(status="ACTIVE"), plane.store.live_tasks())
    assert sorted(counts, key=lambda c: c[1]["ServiceName"]) == [
        (REGION, {"ClusterName": "default", "ServiceName": "idle"}, 0, 0),
        (REGION, {"ClusterName": "default", "ServiceName": "web"}, 3, 1),
    ]


def test_the_recorder_writes_desired_and_running_into_the_metric_store(plane: ControlPlane) -> None:
    instance = register(plane)
    _service(plane, "web", 2)
    _run(plane, instance, "service:web")
    TaskCountRecorder(plane).tick()
    dims = {"ClusterName": "default", "ServiceName": "web"}
    (desired,) = plane.store.metric_datapoints(REGION, "Portside/ECS", "DesiredTaskCount", dims, 0, 2e9)
    (running,) = plane.store.metric_datapoints(REGION, "Portside/ECS", "RunningTaskCount", dims, 0, 2e9)
    assert (desired.stats.sum, running.stats.sum, desired.unit) == (2.0, 1.0, "Count")


def test_collect_reads_clusters_instances_services_tasks_and_charts(plane: ControlPlane) -> None:
    instance = register(plane)
    _service(plane, "web", 2)
    _run(plane, instance, "service:web")
    TaskCountRecorder(plane).tick()
    state = views.build_state(collect(plane, plane.clock()))
    [cluster] = state["clusters"]
    assert [i["arn"] for i in cluster["instances"]] == [instance]
    assert cluster["instances"][0]["cpu"]["registered"] == 2048
    [service] = state["services"]
    assert (service["name"], service["desired"], service["running"]) == ("web", 2, 1)
    [task] = state["tasks"]
    assert task["service"] == "web" and task["containerInstanceArn"] == instance
    counts_chart = service["charts"][1]
    assert [line["label"] for line in counts_chart["lines"]] == ["desired", "running"]
    assert state["loadBalancers"] == [] and state["targetGroups"] == []
