"""``PortsideAgent.PutContainerLogs`` and log retention over a real store, with a clock the test moves."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.agent.registration import registration
from portside.config import ServerConfig
from portside.control import agent_protocol, log_groups, log_shipping, task_definitions
from portside.control.controllers.log_retention import LogRetention
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.control.store.logs import NewEvent
from portside.errors import InvalidParameterException, NotFoundError
from tests.support.agent_tasks import make_task
from tests.support.instances import Clock

REGION = "us-east-1"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    clock = Clock()
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"}), store, "",
                         clock=clock, started_at=clock.now)
    yield plane
    store.close()


def place(plane: ControlPlane, **options: str) -> tuple[str, Any]:
    """An instance, the ``web`` definition (``web`` with awslogs, ``side`` without), and a task on it."""
    body = registration(cluster="default", region=REGION, instance_id="i-0a1b2c3d4e5f60718", address="10.0.0.2",
                        zone=None, docker_version="20.10", cpu_units=1024, memory_mib=1024, reserved_tcp=[],
                        reserved_udp=[], attributes={}, awsvpc=False)
    instance = agent_protocol.register_container_instance(plane, REGION, body)["containerInstance"]["containerInstanceArn"]
    task_definitions.register(plane, REGION, {"family": "web", "containerDefinitions": [
        {"name": "web", "image": "nginx", "memory": 64, "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/ecs/web", "awslogs-region": REGION, "awslogs-stream-prefix": "ecs", **options}}},
        {"name": "side", "image": "nginx", "memory": 64},
    ]})
    task = make_task(instance, containers=("web", "side"))
    plane.store.put_task(task)
    return instance, task


def ship(plane: ControlPlane, instance: str, task: Any, events: list[dict[str, Any]], container: str = "web") -> dict[str, Any]:
    return log_shipping.put_container_logs(plane, REGION, {
        "cluster": "default", "containerInstance": instance, "task": task.arn, "containerName": container,
        "runtimeId": "f00dcafe0001", "events": events})


def messages(plane: ControlPlane, stream: str) -> list[str]:
    return [e.message for e in plane.store.log_events(REGION, "/ecs/web", [stream])]


def test_a_missing_group_is_refused_unless_the_definition_may_create_it(plane: ControlPlane) -> None:
    instance, task = place(plane)
    with pytest.raises(NotFoundError) as exc:
        ship(plane, instance, task, [])
    assert exc.value.code == "ResourceNotFoundException"
    assert plane.store.get_log_group(REGION, "/ecs/web") is None


def test_streams_are_named_from_the_definition_and_batches_stored_once(plane: ControlPlane) -> None:
    instance, task = place(plane, **{"awslogs-create-group": "true"})
    answer = ship(plane, instance, task, [])
    assert answer == {"logGroupName": "/ecs/web", "logStreamName": f"ecs/web/{task.id}", "accepted": 0}
    batch = [{"key": "1700000000000000000:0", "timestamp": 1_700_000_000_000, "message": "one"},
             {"key": "1700000000000000000:1", "timestamp": 1_700_000_000_000, "message": "two\x00"}]
    assert ship(plane, instance, task, batch)["accepted"] == 2
    assert ship(plane, instance, task, batch)["accepted"] == 0  # an answer lost, the batch sent again
    assert messages(plane, f"ecs/web/{task.id}") == ["one", "two\ufffd"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"containerInstance": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/other"}, "containerInstance"),
        ({"containerName": "side"}, "containerName"),
        ({"runtimeId": "../../other-stream"}, "runtimeId"),
        ({"events": [{"key": "x", "timestamp": 1, "message": "m"}]}, "events[0].key"),
        ({"events": [{"key": "1:0", "timestamp": -1, "message": "m"}]}, "events[0].timestamp"),
        ({"events": [{"key": "1:0", "timestamp": 1, "message": "m" * 262_119}]}, "events[0].message"),
        ({"events": [{"key": f"1:{i}", "timestamp": 1, "message": "m"} for i in range(10_001)]}, "events"),
    ],
)
def test_what_an_agent_may_not_ship_is_refused_by_name(plane: ControlPlane, change: dict[str, Any], named: str) -> None:
    instance, task = place(plane, **{"awslogs-create-group": "true"})
    request = {"cluster": "default", "containerInstance": instance, "task": task.arn, "containerName": "web",
               "runtimeId": "f00dcafe0001", "events": [], **change}
    with pytest.raises(InvalidParameterException, match=named.replace("[", r"\[").replace("]", r"\]")):
        log_shipping.put_container_logs(plane, REGION, request)
    assert plane.store.log_events(REGION, "/ecs/web", None) == []


def test_retention_deletes_what_is_older_than_the_policy(plane: ControlPlane) -> None:
    log_groups.create_log_group(plane, REGION, {"logGroupName": "/g"})
    log_groups.create_log_stream(plane, REGION, {"logGroupName": "/g", "logStreamName": "s"})
    now_ms = int(plane.clock() * 1000)
    with plane.store.transaction():
        plane.store.add_log_events(REGION, "/g", "s", [
            NewEvent("a", now_ms - 2 * 86_400_000, "two days old"), NewEvent("b", now_ms - 3_600_000, "an hour old")], now_ms)
    retention = LogRetention(plane)
    retention.tick()
    assert len(plane.store.log_events(REGION, "/g", None)) == 2  # no policy: --log-retention-days (30)
    log_groups.put_retention_policy(plane, REGION, {"logGroupName": "/g", "retentionInDays": 1})
    retention.tick()
    assert [e.message for e in plane.store.log_events(REGION, "/g", None)] == ["an hour old"]
    assert retention.expired_events == 1


def test_groups_without_a_policy_keep_events_the_servers_default_days(plane: ControlPlane) -> None:
    log_groups.create_log_group(plane, REGION, {"logGroupName": "/g"})
    log_groups.create_log_stream(plane, REGION, {"logGroupName": "/g", "logStreamName": "s"})
    now_ms = int(plane.clock() * 1000)
    with plane.store.transaction():
        plane.store.add_log_events(REGION, "/g", "s", [
            NewEvent("a", now_ms - 31 * 86_400_000, "31 days old"), NewEvent("b", now_ms - 29 * 86_400_000, "29")], now_ms)
    LogRetention(plane).tick()
    assert [e.message for e in plane.store.log_events(REGION, "/g", None)] == ["29"]
    plane.config = dataclasses.replace(plane.config, log_retention_days=0)  # as AWS: kept until the group goes
    with plane.store.transaction():
        plane.store.add_log_events(REGION, "/g", "s", [NewEvent("c", now_ms - 400 * 86_400_000, "old")], now_ms)
    LogRetention(plane).tick()
    assert len(plane.store.log_events(REGION, "/g", None)) == 2


def test_without_a_prefix_the_stream_is_the_container_id_as_docker_names_it(plane: ControlPlane) -> None:
    instance, task = place(plane, **{"awslogs-stream-prefix": "", "awslogs-create-group": "true"})
    assert ship(plane, instance, task, [])["logStreamName"] == "f00dcafe0001"
