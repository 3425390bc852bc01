"""What the dashboard reads from a real SQLite store (ui/collect.py) and the task counts the leader
records for its desired-vs-running chart (control/controllers/task_counts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.control import services, task_definitions
from portside.control.controllers.task_counts import TaskCountRecorder, task_counts
from portside.control.plane import ControlPlane
from portside.control.store.logs import NewEvent
from portside.core.lifecycle import TaskStatus
from portside.core.task import Task
from portside.errors import InvalidParameterException
from portside.ui import views
from portside.ui.collect import collect
from portside.ui.logs import task_log_tail
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


def _logged_task(plane: ControlPlane, instance: str, options: dict[str, str] | None) -> Task:
    container: dict[str, Any] = {"name": "web", "image": "busybox", "memory": 16}
    if options is not None:
        container["logConfiguration"] = {"logDriver": "awslogs", "options": options}
    arn = task_definitions.register(plane, REGION, {"family": "logged", "containerDefinitions": [container]})[
        "taskDefinition"]["taskDefinitionArn"]
    task = make_task(instance, containers=("web",))
    task.task_definition_arn = arn
    task.containers[0].docker_id = "d0cce1d"
    plane.store.put_task(task)
    return task


def test_a_task_s_log_tail_is_its_awslogs_stream_newest_last(plane: ControlPlane) -> None:
    task = _logged_task(plane, register(plane), {"awslogs-group": "/ecs/web", "awslogs-stream-prefix": "app"})
    stream = f"app/web/{task.id}"
    plane.store.add_log_group(REGION, "/ecs/web", 0)
    plane.store.add_log_stream(REGION, "/ecs/web", stream, 0)
    plane.store.add_log_stream(REGION, "/ecs/web", "app/web/another-task", 0)
    plane.store.add_log_events(REGION, "/ecs/web", stream, [NewEvent(str(i), 1000 * i, f"line {i}") for i in range(1, 6)], 0)
    plane.store.add_log_events(REGION, "/ecs/web", "app/web/another-task", [NewEvent("x", 3000, "not this task's")], 0)
    tail = task_log_tail(plane, REGION, task.arn, limit=3)
    assert tail["logged"] is True
    assert tail["streams"] == [{"container": "web", "group": "/ecs/web", "stream": stream}]
    assert [(e["at"], e["message"]) for e in tail["events"]] == [(3.0, "line 3"), (4.0, "line 4"), (5.0, "line 5")]


def test_without_a_prefix_the_stream_is_the_container_id(plane: ControlPlane) -> None:
    task = _logged_task(plane, register(plane), {"awslogs-group": "/ecs/web"})
    assert task_log_tail(plane, REGION, task.arn)["streams"][0]["stream"] == "d0cce1d"


def test_a_task_without_awslogs_says_where_its_output_is(plane: ControlPlane) -> None:
    task = _logged_task(plane, register(plane), None)
    tail = task_log_tail(plane, REGION, task.arn)
    assert tail["logged"] is False and tail["events"] == [] and "docker logs" in tail["note"]


@pytest.mark.parametrize("reference", [None, "", "arn:aws:ecs:us-east-1:000000000000:task/default/missing"])
def test_a_log_tail_of_an_unknown_task_is_refused_by_name(plane: ControlPlane, reference: Any) -> None:
    with pytest.raises(InvalidParameterException, match="task"):
        task_log_tail(plane, REGION, reference)
