"""UpdateContainerInstancesState and DeregisterContainerInstance (control/instance_state.py), and
awsvpc RunTask kept on the server's own host (control/tasks.admit_tasks), in process over a real
SQLite store: refusals name the rule and change nothing; placement follows the instance's status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control import instance_state, task_definitions, tasks
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core import arns
from portside.errors import ClientException, InvalidParameterException
from tests.support.instances import register_host

REGION = "us-east-1"
ACCOUNT = "000000000000"
SERVER_HOST, OTHER_HOST = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"


def own_arn(instance_id: str) -> str:
    """The ARN RegisterContainerInstance derives for ``instance_id`` in cluster default."""
    return arns.container_instance_arn(
        REGION, ACCOUNT, "default", arns.stable_hex_id("container-instance", instance_id, REGION, "default")
    )


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cfg = ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"})
    store = Store(tmp_path / "portside.db")
    # The server's own host is SERVER_HOST; only the tests that need it register it.
    plane = ControlPlane(cfg, store, own_arn(SERVER_HOST))
    plane.started_at = plane.clock()
    yield plane
    store.close()


def register(plane: ControlPlane, instance_id: str = OTHER_HOST) -> str:
    return register_host(plane, instance_id, awsvpc=True)


def define(plane: ControlPlane, network_mode: str = "bridge") -> str:
    port = {"containerPort": 80, "hostPort": 0} if network_mode == "bridge" else {"containerPort": 80}
    body = task_definitions.register(
        plane,
        REGION,
        {
            "family": f"web-{network_mode}",
            "networkMode": network_mode,
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {"name": "web", "image": "nginx", "essential": True, "portMappings": [port]}
            ],
        },
    )
    return str(body["taskDefinition"]["taskDefinitionArn"])


def run(plane: ControlPlane, definition: str, **params: Any) -> dict[str, Any]:
    return tasks.run_task(plane, REGION, {"cluster": "default", "taskDefinition": definition, **params})


def update(plane: ControlPlane, references: list[str], status: str = "DRAINING") -> dict[str, Any]:
    return instance_state.update_container_instances_state(
        plane, REGION, {"cluster": "default", "containerInstances": references, "status": status}
    )


def instances(plane: ControlPlane) -> list[dict[str, Any]]:
    return plane.store.list_container_instances(REGION, "default")


# -- UpdateContainerInstancesState


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "INACTIVE"}, "status must be one of ACTIVE, DRAINING"),
        ({"status": "draining"}, "status must be one of ACTIVE, DRAINING"),
        ({"status": None}, "status must be one of ACTIVE, DRAINING"),
        ({"containerInstances": []}, "containerInstances can not be empty"),
        ({"containerInstances": ["x"] * 11}, "containerInstances can have at most 10 items"),
    ],
)
def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(
    plane: ControlPlane, params: dict[str, Any], message: str
) -> None:
    arn = register(plane)
    before = instances(plane)
    topics: list[str] = []
    plane.watchers.append(topics.append)
    with pytest.raises(InvalidParameterException, match=message):
        instance_state.update_container_instances_state(
            plane, REGION, {"cluster": "default", "containerInstances": [arn], "status": "DRAINING", **params}
        )
    assert instances(plane) == before
    assert topics == []


def test_an_unknown_or_deregistered_instance_is_a_failure_missing(plane: ControlPlane) -> None:
    arn = register(plane)
    gone = register(plane, SERVER_HOST)
    instance_state.deregister_container_instance(plane, REGION, {"containerInstance": gone})
    unknown = "f" * 32
    answer = update(plane, [arn.rsplit("/", 1)[-1], unknown, gone])
    assert [i["containerInstanceArn"] for i in answer["containerInstances"]] == [arn]
    assert answer["failures"] == [
        {"arn": arns.container_instance_arn(REGION, ACCOUNT, "default", unknown), "reason": "MISSING"},
        {"arn": gone, "reason": "MISSING"},
    ]
    assert plane.store.get_container_instance(gone)["status"] == "INACTIVE"  # type: ignore[index]


def test_draining_stops_placement_and_active_again_restores_it(plane: ControlPlane) -> None:
    arn = register(plane)
    definition = define(plane)
    version = plane.store.get_container_instance(arn)["version"]  # type: ignore[index]
    answer = update(plane, [arn])
    assert answer["containerInstances"][0]["status"] == "DRAINING" and answer["failures"] == []
    assert plane.store.get_container_instance(arn)["version"] == version + 1  # type: ignore[index]
    update(plane, [arn])  # already DRAINING: no new version
    assert plane.store.get_container_instance(arn)["version"] == version + 1  # type: ignore[index]
    refused = run(plane, definition)
    assert refused["tasks"] == [] and refused["failures"]
    update(plane, [arn], "ACTIVE")
    assert plane.store.get_container_instance(arn)["version"] == version + 2  # type: ignore[index]
    assert [t["containerInstanceArn"] for t in run(plane, definition)["tasks"]] == [arn]


# -- DeregisterContainerInstance


def test_deregistering_an_instance_with_live_tasks_needs_force_and_changes_nothing(
    plane: ControlPlane,
) -> None:
    arn = register(plane)
    [task] = run(plane, define(plane))["tasks"]
    before = (instances(plane), plane.store.get_task(task["taskArn"]).to_json())  # type: ignore[union-attr]
    with pytest.raises(InvalidParameterException, match="Found running tasks on the instance"):
        instance_state.deregister_container_instance(plane, REGION, {"containerInstance": arn})
    with pytest.raises(InvalidParameterException, match="Found running tasks on the instance"):
        instance_state.deregister_container_instance(
            plane, REGION, {"containerInstance": arn, "force": False}
        )
    after = (instances(plane), plane.store.get_task(task["taskArn"]).to_json())  # type: ignore[union-attr]
    assert after == before


def test_a_forced_deregistration_orphans_the_tasks_and_the_instance_takes_nothing_new(
    plane: ControlPlane,
) -> None:
    arn = register(plane)
    definition = define(plane)
    [task] = run(plane, definition)["tasks"]
    heard: list[str] = []
    plane.task_watchers.append(lambda t: heard.append(t.arn))
    revision = plane.store.task_revision()
    answer = instance_state.deregister_container_instance(
        plane, REGION, {"containerInstance": arn, "force": True}
    )
    assert answer["containerInstance"]["status"] == "INACTIVE"
    orphaned = plane.store.get_task(task["taskArn"])
    assert orphaned is not None
    assert (orphaned.last_status.name, orphaned.desired_status) == ("STOPPED", "STOPPED")
    assert orphaned.stopped_reason is not None and OTHER_HOST in orphaned.stopped_reason
    assert plane.store.task_revision() == revision  # its agent is not told: the task is orphaned, not stopped
    assert heard == [task["taskArn"]]  # the service controller hears it (deregisters targets, replaces it)
    assert plane.store.get_container_instance(arn)["status"] == "INACTIVE"  # type: ignore[index]
    refused = run(plane, definition)
    assert refused["tasks"] == [] and refused["failures"]


@pytest.mark.parametrize("reference", ["", "f" * 32, "deregistered"])
def test_deregistering_an_unknown_instance_is_refused(plane: ControlPlane, reference: str) -> None:
    arn = register(plane)
    if reference == "deregistered":
        instance_state.deregister_container_instance(plane, REGION, {"containerInstance": arn})
        reference = arn
    before = instances(plane)
    error = InvalidParameterException if not reference else ClientException
    with pytest.raises(error, match="can not be blank" if not reference else "was not found"):
        instance_state.deregister_container_instance(plane, REGION, {"containerInstance": reference})
    assert instances(plane) == before


# -- awsvpc stays on the server's own host


def test_awsvpc_run_task_where_the_servers_host_is_not_registered_is_refused_clearly(
    plane: ControlPlane,
) -> None:
    register(plane)  # another host, fit and connected
    definition = define(plane, "awsvpc")
    revision = plane.store.task_revision()
    with pytest.raises(
        InvalidParameterException,
        match=(
            "networkMode awsvpc: tasks run only on the portside server's own host, "
            "and it is not a container instance of cluster default"
        ),
    ):
        run(plane, definition)
    assert plane.store.task_revision() == revision


def test_awsvpc_tasks_are_placed_on_the_servers_host_only(plane: ControlPlane) -> None:
    register(plane)
    own = register(plane, SERVER_HOST)
    placed = run(plane, define(plane, "awsvpc"), count=3)
    assert [t["containerInstanceArn"] for t in placed["tasks"]] == [own] * 3
