"""Custom attributes on container instances through real boto3 and the AWS CLI against a real server.

PutAttributes, DeleteAttributes and ListAttributes as ECS answers them; refused requests change
nothing; placement (RunTask and a service) honours ``memberOf(attribute:...)`` once the attribute
is put; custom attributes survive a server restart (re-registration).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.integration.conftest import remove_server_containers
from tests.integration.test_services import create_service, delete_service, events, service, task_definition
from tests.integration.test_task_features import _aws_cli
from tests.integration.test_tasks import FAST_WAITER, get, host_port
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

BLUE = [{"type": "memberOf", "expression": "attribute:stack == blue"}]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str
) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("attributes"))
    process.start()
    yield process
    _teardown(process, docker_client)


def _teardown(process: PortsideProcess, docker_client: Any) -> None:
    try:
        ecs = process.client()
        for arn in ecs.list_services(maxResults=100)["serviceArns"]:
            ecs.delete_service(service=arn, force=True)
        for arn in ecs.list_tasks(maxResults=100)["taskArns"]:
            ecs.stop_task(task=arn, reason="test teardown")
    except (BotoCoreError, ClientError):  # the server is gone already: nothing to stop through it
        pass
    process.stop()
    remove_server_containers(docker_client, process)


@pytest.fixture
def ecs(server: PortsideProcess) -> Iterator[Any]:
    """A client, with the instance holding no custom attribute before and after the test."""
    client = server.client()
    _clear_custom(client)
    yield client
    _clear_custom(client)


def _clear_custom(ecs: Any) -> None:
    custom = [a for a in _listed(ecs) if not a["name"].startswith(("ecs.", "com.amazonaws.ecs."))]
    for i in range(0, len(custom), 10):
        ecs.delete_attributes(
            attributes=[{"name": a["name"], "targetId": a["targetId"]} for a in custom[i : i + 10]]
        )


def _listed(ecs: Any, **filters: Any) -> list[dict[str, Any]]:
    pages = ecs.get_paginator("list_attributes").paginate(targetType="container-instance", **filters)
    return [a for page in pages for a in page["attributes"]]


def _instance(ecs: Any) -> dict[str, Any]:
    [arn] = ecs.list_container_instances()["containerInstanceArns"]
    [body] = ecs.describe_container_instances(containerInstances=[arn])["containerInstances"]
    return dict(body)


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


# -- the three calls


def test_put_list_describe_and_delete(ecs: Any) -> None:
    instance = _instance(ecs)
    arn = instance["containerInstanceArn"]
    instance_id = arn.rsplit("/", 1)[-1]
    put = ecs.put_attributes(
        attributes=[
            {"name": "stack", "value": "blue", "targetId": arn},
            {"name": "tier", "targetId": instance_id, "targetType": "container-instance"},
        ]
    )["attributes"]
    assert put == [{"name": "stack", "value": "blue", "targetId": arn}, {"name": "tier", "targetId": arn}]

    described = _instance(ecs)["attributes"]
    assert {"name": "stack", "value": "blue"} in described and {"name": "tier"} in described
    assert {"name": "ecs.os-type", "value": "linux"} in described  # built-in ones stay

    assert _listed(ecs, attributeName="stack") == [{"name": "stack", "targetId": arn, "value": "blue"}]
    assert _listed(ecs, attributeName="stack", attributeValue="green") == []
    assert _listed(ecs, attributeName="ecs.os-type", attributeValue="linux") == [
        {"name": "ecs.os-type", "targetId": arn, "value": "linux"}
    ]
    everything = _listed(ecs)
    assert len(everything) == len(described)
    one_by_one = ecs.get_paginator("list_attributes").paginate(
        targetType="container-instance", PaginationConfig={"PageSize": 1}
    )
    pages = [page["attributes"] for page in one_by_one]
    assert all(len(p) == 1 for p in pages) and [a for p in pages for a in p] == everything

    replaced = ecs.put_attributes(attributes=[{"name": "stack", "value": "green", "targetId": arn}])[
        "attributes"
    ]
    assert replaced == [{"name": "stack", "value": "green", "targetId": arn}]
    assert _listed(ecs, attributeName="stack") == [{"name": "stack", "targetId": arn, "value": "green"}]

    deleted = ecs.delete_attributes(
        attributes=[{"name": "stack", "targetId": arn}, {"name": "never-put", "targetId": arn}]
    )["attributes"]
    assert deleted == [{"name": "stack", "targetId": arn, "value": "green"}]  # the stored value, as ECS shows
    assert _listed(ecs, attributeName="stack") == []
    assert [a["name"] for a in _listed(ecs, attributeName="tier")] == ["tier"]


def _refusals(arn: str) -> list[tuple[dict[str, Any], str, str]]:
    instance_id = arn.rsplit("/", 1)[-1]
    unknown = arn.replace(instance_id, "0" * 32)
    invalid = "InvalidParameterException"
    return [
        ({"name": "stack color", "value": "blue", "targetId": arn}, invalid, "attributes[1].name"),
        ({"name": "stack", "value": "blue#", "targetId": arn}, invalid, "attributes[1].value"),
        ({"name": "stack", "value": "v" * 129, "targetId": arn}, invalid, "attributes[1].value"),
        ({"name": "stack", "value": "blue"}, invalid, "attributes[1].targetId is required"),
        ({"name": "stack", "targetId": instance_id}, invalid, "attributes[1].targetType is required"),
        ({"name": "stack", "targetId": instance_id, "targetType": "task"}, invalid, "targetType"),
        ({"name": "ecs.os-type", "value": "windows", "targetId": arn}, invalid, "built-in"),
        ({"name": "stack", "targetId": unknown}, "TargetNotFoundException",
         f"no container instance '{unknown}' in cluster 'default'"),
        ({"name": "stack", "targetId": arn.replace("/default/", "/elsewhere/")}, "TargetNotFoundException",
         "attributes[1].targetId"),
        ({"name": "ok", "targetId": arn}, invalid, "attributes[1] repeats attributes[0]"),
    ]  # fmt: skip


def test_a_refused_put_or_delete_changes_nothing(ecs: Any) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    before = _instance(ecs)["attributes"]
    for bad, code, says in _refusals(arn):
        for call in (ecs.put_attributes, ecs.delete_attributes):
            with pytest.raises(ClientError) as excinfo:
                call(attributes=[{"name": "ok", "value": "fine", "targetId": arn}, bad])
            assert _error(excinfo)[0] == code, bad
            assert says in _error(excinfo)[1], (bad, _error(excinfo))
            assert _instance(ecs)["attributes"] == before, bad
    with pytest.raises(ClientError) as excinfo:
        ecs.put_attributes(cluster="nowhere", attributes=[{"name": "ok", "targetId": arn}])
    assert _error(excinfo)[0] == "ClusterNotFoundException"


def test_a_delete_with_another_value_changes_nothing(ecs: Any) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    ecs.put_attributes(
        attributes=[{"name": "stack", "value": "blue", "targetId": arn}, {"name": "tier", "targetId": arn}]
    )
    with pytest.raises(ClientError) as excinfo:
        ecs.delete_attributes(
            attributes=[
                {"name": "tier", "targetId": arn},
                {"name": "stack", "value": "green", "targetId": arn},
            ]
        )
    assert _error(excinfo) == (
        "InvalidParameterException",
        (
            f"attributes[1].value 'green' is not the value of attribute 'stack' on container instance "
            f"{arn.rsplit('/', 1)[-1]} ('blue'); omit value to delete it whatever its value."
        ),
    )
    assert sorted(a["name"] for a in _listed(ecs) if a["name"] in ("stack", "tier")) == ["stack", "tier"]


def test_ten_custom_attributes_per_instance_and_ten_per_call(ecs: Any) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    ecs.put_attributes(attributes=[{"name": f"a{i}", "value": "x", "targetId": arn} for i in range(9)])
    ecs.put_attributes(
        attributes=[{"name": "a9", "targetId": arn}, {"name": "a0", "value": "y", "targetId": arn}]
    )
    before = _instance(ecs)["attributes"]
    with pytest.raises(ClientError) as excinfo:
        ecs.put_attributes(
            attributes=[{"name": "a0", "value": "z", "targetId": arn}, {"name": "a10", "targetId": arn}]
        )
    code, message = _error(excinfo)
    assert code == "AttributeLimitExceededException"
    assert "would have 11 custom attributes; at most 10" in message
    assert _instance(ecs)["attributes"] == before
    with pytest.raises(ClientError) as excinfo:
        ecs.delete_attributes(attributes=[{"name": f"a{i}", "targetId": arn} for i in range(11)])
    assert _error(excinfo)[0] == "InvalidParameterException" and "at most 10" in _error(excinfo)[1]
    assert _instance(ecs)["attributes"] == before


def test_list_attributes_refuses_what_it_cannot_answer(ecs: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        ecs.list_attributes(targetType="container-instance", attributeValue="blue")
    assert _error(excinfo) == (
        "InvalidParameterException",
        "attributeValue requires attributeName: give the name whose value to match.",
    )
    with pytest.raises(ClientError) as excinfo:
        ecs.list_attributes(targetType="task")
    assert _error(excinfo)[0] == "InvalidParameterException" and "targetType" in _error(excinfo)[1]
    with pytest.raises(ClientError) as excinfo:
        ecs.list_attributes(targetType="container-instance", cluster="nowhere")
    assert _error(excinfo)[0] == "ClusterNotFoundException"
    for size in (0, 101):
        with pytest.raises(ClientError) as excinfo:
            ecs.list_attributes(targetType="container-instance", maxResults=size)
        assert _error(excinfo)[0] == "InvalidParameterException"


# -- placement


def test_run_task_places_on_member_of_only_once_the_attribute_is_put(ecs: Any, busybox_image: str) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    td = task_definition(ecs, busybox_image, "attr-run")
    refused = ecs.run_task(taskDefinition=td, placementConstraints=BLUE)
    assert refused["tasks"] == []
    assert [(f["arn"], f["reason"]) for f in refused["failures"]] == [(arn, "ATTRIBUTE")]
    assert "memberOf 'attribute:stack == blue' is false" in refused["failures"][0]["detail"]

    ecs.put_attributes(attributes=[{"name": "stack", "value": "green", "targetId": arn}])
    assert ecs.run_task(taskDefinition=td, placementConstraints=BLUE)["failures"][0]["reason"] == "ATTRIBUTE"

    ecs.put_attributes(attributes=[{"name": "stack", "value": "blue", "targetId": arn}])
    placed = ecs.run_task(taskDefinition=td, placementConstraints=BLUE)
    assert placed["failures"] == []
    [task] = placed["tasks"]
    assert task["containerInstanceArn"] == arn
    ecs.get_waiter("tasks_running").wait(tasks=[task["taskArn"]], WaiterConfig=FAST_WAITER)
    [task] = ecs.describe_tasks(tasks=[task["taskArn"]])["tasks"]
    assert get(f"http://127.0.0.1:{host_port(task)}/cgi-bin/whoami")
    ecs.stop_task(task=task["taskArn"], reason="test done")


def test_a_service_waits_for_the_attribute_then_places(ecs: Any, busybox_image: str) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    td = task_definition(ecs, busybox_image, "attr-svc")
    try:
        create_service(ecs, "attr-blue", td, None, 1, placementConstraints=BLUE)
        expected = (
            "(service attr-blue) was unable to place a task because no container instance met all of its "
            f"requirements. The closest matching (container-instance {arn.rsplit('/', 1)[-1]}) is missing an "
            "attribute required by your task."
        )
        eventually(
            lambda: any(expected in e for e in events(ecs, "attr-blue")), 15, 0.5, "the attribute event"
        )
        assert service(ecs, "attr-blue")["runningCount"] == 0
        ecs.put_attributes(attributes=[{"name": "stack", "value": "blue", "targetId": arn}])
        eventually(lambda: service(ecs, "attr-blue")["runningCount"] == 1, 30, 0.5, "one task running")
    finally:
        delete_service(ecs, "attr-blue")


# -- the AWS CLI


def test_the_aws_cli_puts_and_lists_attributes(ecs: Any, server: PortsideProcess, tmp_path: Path) -> None:
    arn = _instance(ecs)["containerInstanceArn"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="anything", AWS_SECRET_ACCESS_KEY="anything",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="",
    )  # fmt: skip
    base = [
        *_aws_cli(),
        "ecs",
        "--endpoint-url",
        server.endpoint,
        "--region",
        "us-east-1",
        "--output",
        "json",
    ]

    def aws(*args: str) -> Any:
        done = subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=90, check=False
        )
        assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    put = aws("put-attributes", "--attributes", f"name=stack,value=blue,targetId={arn}")
    assert put == {"attributes": [{"name": "stack", "targetId": arn, "value": "blue"}]}
    listed = aws("list-attributes", "--target-type", "container-instance", "--attribute-name", "stack")
    assert listed == {"attributes": [{"name": "stack", "targetId": arn, "value": "blue"}]}


# -- restart


def test_custom_attributes_survive_a_restart(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    process = PortsideProcess(tmp_path / "state")
    process.start()
    try:
        ecs = process.client()
        arn = _instance(ecs)["containerInstanceArn"]
        ecs.put_attributes(
            attributes=[
                {"name": "stack", "value": "blue", "targetId": arn},
                {"name": "tier", "targetId": arn},
            ]
        )
        before = _instance(ecs)
        process.stop()
        process.start()
        ecs = process.client()
        after = _instance(ecs)
        assert after["containerInstanceArn"] == arn and after["version"] == before["version"] + 1
        assert after["attributes"] == before["attributes"]  # built-in ones re-registered, custom ones kept
        assert _listed(ecs, attributeName="stack") == [{"name": "stack", "targetId": arn, "value": "blue"}]
    finally:
        _teardown(process, docker_client)
