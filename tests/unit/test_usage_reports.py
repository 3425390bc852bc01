"""PublishMetrics on the control plane (control/usage_reports.py) over a real SQLite store: what an
agent's usage report records as AWS/ECS metrics, and that a bad report is refused by field and
records nothing."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.agent.registration import registration
from portside.config import ServerConfig
from portside.control import agent_protocol, usage_reports
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.lifecycle import TaskStatus
from portside.core.task import Task
from portside.errors import InvalidParameterException, NotFoundError
from tests.support.agent_tasks import make_task
from tests.support.instances import Clock

REGION = "us-east-1"
MIB = 1024 * 1024
SERVICE = {"ClusterName": "default", "ServiceName": "web"}
CLUSTER = {"ClusterName": "default"}


def make_plane(tmp_path: Path, period_s: float) -> ControlPlane:
    clock = Clock()
    cfg = ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"}, scaling_period_s=period_s)
    return ControlPlane(cfg, Store(tmp_path / "portside.db"), "", clock=clock, started_at=clock.now)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = make_plane(tmp_path, 60.0)
    yield plane
    plane.store.close()


def register(plane: ControlPlane, instance_id: str = "i-0a1b2c3d4e5f60718") -> str:
    body = registration(
        cluster="default", region=REGION, instance_id=instance_id, address="10.0.0.2", zone=None, docker_version="test",
        cpu_units=2048, memory_mib=4096, reserved_tcp=[], reserved_udp=[], attributes={}, awsvpc=False,
    )
    return agent_protocol.register_container_instance(plane, REGION, body)["containerInstance"]["containerInstanceArn"]


def place(plane: ControlPlane, instance: str, group: str = "service:web", containers: tuple[str, ...] = ("web", "log")) -> Task:
    task = make_task(instance, group=group, containers=containers)  # cpu 128 units, memory 128 MiB
    task.last_status = TaskStatus.RUNNING
    plane.store.put_task(task)
    return task


def report(instance: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"cluster": "default", "containerInstance": instance, "tasks": list(entries)}


def busy(task: Task) -> dict[str, Any]:
    """The task used 64 CPU units (half its 128) and 64 MiB (half its 128) over one second."""
    return {"task": task.arn, "containers": [
        {"containerName": "web", "cpuNanoseconds": 50_000_000, "seconds": 1.0, "memoryBytes": 48 * MIB},
        {"containerName": "log", "cpuNanoseconds": 12_500_000, "seconds": 1.0, "memoryBytes": 16 * MIB},
    ]}


def averages(plane: ControlPlane, metric: str, dimensions: dict[str, str]) -> list[float]:
    points = plane.store.metric_datapoints(REGION, "AWS/ECS", metric, dimensions, 0, 2e9)
    assert all(p.unit == "Percent" for p in points)
    return [p.stats.sum / p.stats.sample_count for p in points]


def test_a_service_task_is_recorded_against_its_reservation_and_the_cluster_against_the_instance(plane: ControlPlane) -> None:
    instance = register(plane)
    task = place(plane, instance)
    answer = usage_reports.publish_metrics(plane, REGION, report(instance, busy(task)))
    assert answer == {"acknowledgment": "ACCEPTED", "ignored": [], "reportSeconds": 20.0}
    assert averages(plane, "CPUUtilization", SERVICE) == [pytest.approx(50.0)]
    assert averages(plane, "MemoryUtilization", SERVICE) == [pytest.approx(50.0)]
    assert averages(plane, "CPUUtilization", CLUSTER) == [pytest.approx(64 / 2048 * 100)]
    assert averages(plane, "MemoryUtilization", CLUSTER) == [pytest.approx(64 / 4096 * 100)]
    (point,) = plane.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", SERVICE, 0, 2e9)
    assert point.resolution == 60 and point.ts == int(plane.clock() // 60 * 60)  # the control plane's time, not the agent's


def test_reports_of_one_bucket_merge_into_its_statistic_set(plane: ControlPlane) -> None:
    instance = register(plane)
    one, two = place(plane, instance), place(plane, instance)
    idle = copy.deepcopy(busy(two))
    for container in idle["containers"]:
        container["cpuNanoseconds"] = 0
    usage_reports.publish_metrics(plane, REGION, report(instance, busy(one), idle))
    (point,) = plane.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", SERVICE, 0, 2e9)
    assert (point.stats.sample_count, point.stats.minimum, point.stats.maximum) == (2, 0.0, pytest.approx(50.0))


def test_a_task_outside_a_service_counts_for_its_cluster_only(plane: ControlPlane) -> None:
    instance = register(plane)
    task = place(plane, instance, group="family:web")
    usage_reports.publish_metrics(plane, REGION, report(instance, busy(task)))
    assert plane.store.metric_keys(REGION, "AWS/ECS") == [
        ("AWS/ECS", "CPUUtilization", CLUSTER), ("AWS/ECS", "MemoryUtilization", CLUSTER),
    ]


def test_a_first_report_without_a_cpu_interval_records_memory_only(plane: ControlPlane) -> None:
    instance = register(plane)
    task = place(plane, instance, containers=("web",))
    usage_reports.publish_metrics(plane, REGION, report(instance, {"task": task.arn, "containers": [
        {"containerName": "web", "memoryBytes": 32 * MIB}]}))
    assert averages(plane, "MemoryUtilization", SERVICE) == [pytest.approx(25.0)]
    assert averages(plane, "CPUUtilization", SERVICE) == []


def test_a_task_without_reservations_is_measured_against_one_core_and_has_no_memory_metric(plane: ControlPlane) -> None:
    instance = register(plane)
    task = make_task(instance, group="service:web")
    task.cpu, task.memory, task.last_status = 0, 0, TaskStatus.RUNNING
    plane.store.put_task(task)
    usage_reports.publish_metrics(plane, REGION, report(instance, {"task": task.arn, "containers": [
        {"containerName": "web", "cpuNanoseconds": 2_000_000_000, "seconds": 2.0, "memoryBytes": MIB}]}))
    assert averages(plane, "CPUUtilization", SERVICE) == [pytest.approx(100.0)]
    assert averages(plane, "MemoryUtilization", SERVICE) == []


def test_a_stopped_task_is_ignored_and_named(plane: ControlPlane) -> None:
    instance = register(plane)
    task = place(plane, instance)
    task.last_status = TaskStatus.STOPPED
    plane.store.put_task(task)
    answer = usage_reports.publish_metrics(plane, REGION, report(instance, busy(task)))
    assert answer["ignored"] == [task.arn]
    assert averages(plane, "CPUUtilization", SERVICE) == []


def test_the_report_interval_and_bucket_follow_the_scaling_period(tmp_path: Path) -> None:
    plane = make_plane(tmp_path, 1.0)
    try:
        instance = register(plane)
        task = place(plane, instance)
        assert usage_reports.publish_metrics(plane, REGION, report(instance, busy(task)))["reportSeconds"] == 0.5
        (point,) = plane.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", SERVICE, 0, 2e9)
        assert point.resolution == 1
    finally:
        plane.store.close()


REFUSALS: dict[str, tuple[Any, str]] = {
    "tasks-not-a-list": (lambda r: r.update(tasks={"a": 1}), "tasks must be a list of at most 200"),
    "too-many-tasks": (lambda r: r.update(tasks=r["tasks"] * 201), "tasks must be a list of at most 200"),
    "entry-not-an-object": (lambda r: r["tasks"].append("x"), r"tasks\[1\] must be an object"),
    "unknown-task": (lambda r: r["tasks"][0].update(task="arn:aws:ecs:us-east-1:0:task/default/nope"),
                     r"tasks\[0\].task: .* was not found"),
    "reported-twice": (lambda r: r["tasks"].append(copy.deepcopy(r["tasks"][0])), r"tasks\[1\].task: .* is reported twice"),
    "no-containers": (lambda r: r["tasks"][0].update(containers=[]), r"tasks\[0\].containers must list"),
    "unknown-container": (lambda r: r["tasks"][0]["containers"][1].update(containerName="db"),
                          r"tasks\[0\].containers\[1\].containerName: task .* has no container 'db'"),
    "container-name-an-object": (lambda r: r["tasks"][0]["containers"][0].update(containerName={"a": 1}),
                                 r"tasks\[0\].containers\[0\].containerName: task .* has no container \{'a': 1\}"),
    "container-not-an-object": (lambda r: r["tasks"][0]["containers"].append(["web"]), r"tasks\[0\].containers\[2\] must be an object"),
    "seconds-not-a-number": (lambda r: r["tasks"][0]["containers"][0].update(seconds=float("nan")), r"containers\[0\].seconds must be"),
    "container-twice": (lambda r: r["tasks"][0]["containers"][1].update(containerName="web"),
                        r"tasks\[0\].containers\[1\].containerName: web is reported twice"),
    "negative-cpu": (lambda r: r["tasks"][0]["containers"][0].update(cpuNanoseconds=-1), r"containers\[0\].cpuNanoseconds"),
    "cpu-a-bool": (lambda r: r["tasks"][0]["containers"][0].update(cpuNanoseconds=True), r"containers\[0\].cpuNanoseconds"),
    "cpu-too-big": (lambda r: r["tasks"][0]["containers"][0].update(cpuNanoseconds=2**63), r"containers\[0\].cpuNanoseconds"),
    "zero-seconds": (lambda r: r["tasks"][0]["containers"][0].update(seconds=0), r"containers\[0\].seconds must be"),
    "hours-of-seconds": (lambda r: r["tasks"][0]["containers"][0].update(seconds=3601), r"containers\[0\].seconds must be"),
    "seconds-alone": (lambda r: r["tasks"][0]["containers"][0].pop("cpuNanoseconds"), r"containers\[0\].seconds is only given"),
    "memory-a-string": (lambda r: r["tasks"][0]["containers"][0].update(memoryBytes="1"), r"containers\[0\].memoryBytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_report_is_refused_by_field_and_records_nothing(plane: ControlPlane, case: str) -> None:
    change, message = REFUSALS[case]
    instance = register(plane)
    good = place(plane, instance)
    request = report(instance, busy(good))
    change(request)
    with pytest.raises(InvalidParameterException, match=message):
        usage_reports.publish_metrics(plane, REGION, request)
    assert plane.store.metric_keys(REGION) == []


def test_a_task_of_another_instance_is_refused(plane: ControlPlane) -> None:
    mine, other = register(plane), register(plane, "i-0ffffffffffffffff")
    theirs = place(plane, other)
    with pytest.raises(InvalidParameterException, match=r"tasks\[1\].task: task .* is not placed on"):
        usage_reports.publish_metrics(plane, REGION, report(mine, busy(place(plane, mine)), busy(theirs)))
    assert plane.store.metric_keys(REGION) == []


def test_an_unregistered_instance_is_refused(plane: ControlPlane) -> None:
    register(plane)
    with pytest.raises(NotFoundError):
        usage_reports.publish_metrics(plane, REGION, report("arn:aws:ecs:us-east-1:000000000000:container-instance/default/ffff"))


def test_each_host_is_recorded_in_portside_s_namespace_too(plane: ControlPlane) -> None:
    instance = register(plane)
    task = place(plane, instance)
    usage_reports.publish_metrics(plane, REGION, report(instance, busy(task)))
    host = {"ClusterName": "default", "ContainerInstanceId": instance.rsplit("/", 1)[-1]}
    (cpu,) = plane.store.metric_datapoints(REGION, "Portside/ECS", "CPUUtilization", host, 0, 2e9)
    (memory,) = plane.store.metric_datapoints(REGION, "Portside/ECS", "MemoryUtilization", host, 0, 2e9)
    assert cpu.stats.sum == pytest.approx(64 / 2048 * 100) and memory.stats.sum == pytest.approx(64 / 4096 * 100)
    assert plane.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", host, 0, 2e9) == []  # not an AWS/ECS metric
