"""Where portside answered differently from ECS, now answering as ECS does, through a real endpoint
and boto3 (tests/support/ecs_endpoint.py): ClusterNotFoundException before ServiceNotFoundException
in every service operation, DescribeServices failures, an EFS volume's default rootDirectory,
pidMode host refused for FARGATE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.ecs_endpoint import ACCOUNT, REGION, EcsEndpoint

BASE = f"arn:aws:ecs:{REGION}:{ACCOUNT}"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EcsEndpoint]:
    endpoint = EcsEndpoint(tmp_path)
    yield endpoint
    endpoint.close()


def code_of(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**params)
    return str(info.value.response["Error"]["Code"])


def service_calls(env: EcsEndpoint) -> list[tuple[Any, dict[str, Any]]]:
    ecs = env.ecs
    return [
        (ecs.update_service, {"desiredCount": 1}),
        (ecs.delete_service, {"force": True}),
        (ecs.list_service_deployments, {}),
    ]


@pytest.mark.parametrize("reference", ["web", f"{BASE}:service/nope/web"])
def test_a_missing_cluster_is_named_before_a_missing_service(env: EcsEndpoint, reference: str) -> None:
    ecs = env.ecs
    for call, params in service_calls(env):
        assert code_of(call, cluster="nope", service=reference, **params) == "ClusterNotFoundException", call
        if reference.startswith("arn:"):  # no cluster given: the one the service ARN names
            assert code_of(call, service=reference, **params) == "ClusterNotFoundException", call
        assert code_of(call, service="absent", **params) == "ServiceNotFoundException", call
    assert code_of(ecs.describe_services, cluster="nope", services=[reference]) == "ClusterNotFoundException"
    assert code_of(ecs.describe_services, services=[f"{BASE}:service/nope/web"]) == "ClusterNotFoundException"
    assert code_of(ecs.list_services, cluster="nope") == "ClusterNotFoundException"
    assert code_of(
        ecs.create_service, cluster="nope", serviceName="web", taskDefinition="web", desiredCount=0
    ) == ("ClusterNotFoundException")


def test_describe_services_failures_name_the_service_as_ecs_does(env: EcsEndpoint) -> None:
    env.service("web")
    answer = env.ecs.describe_services(services=["web", "absent", f"{BASE}:service/default/gone"])
    assert [s["serviceName"] for s in answer["services"]] == ["web"]
    assert answer["failures"] == [
        {"arn": f"{BASE}:service/absent", "reason": "MISSING"},  # a name: the short ARN, no cluster
        {"arn": f"{BASE}:service/default/gone", "reason": "MISSING"},  # an ARN: as given
    ]
    by_arn = env.ecs.describe_services(services=[f"{BASE}:service/default/web"])  # the cluster from the ARN
    assert [s["serviceName"] for s in by_arn["services"]] == ["web"]


def test_an_efs_volume_without_root_directory_echoes_the_root(env: EcsEndpoint) -> None:
    volumes = [
        {"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}},
        {"name": "logs", "efsVolumeConfiguration": {"fileSystemId": "fs-2", "rootDirectory": "/logs"}},
    ]
    td = env.task_definition("efs", volumes=volumes)
    assert [v["efsVolumeConfiguration"]["rootDirectory"] for v in td["volumes"]] == ["/", "/logs"]
    described = env.ecs.describe_task_definition(taskDefinition="efs")["taskDefinition"]
    assert [v["efsVolumeConfiguration"]["rootDirectory"] for v in described["volumes"]] == ["/", "/logs"]


def test_pid_mode_host_is_refused_for_fargate_with_ecs_message(env: EcsEndpoint) -> None:
    fargate = {"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512"}
    with pytest.raises(ClientError) as info:
        env.task_definition("pid", pidMode="host", **fargate)
    assert info.value.response["Error"] == {
        "Code": "ClientException",
        "Message": "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'.",
    }
    assert env.ecs.list_task_definition_families(familyPrefix="pid")["families"] == []
    assert env.task_definition("pid", pidMode="task", **fargate)["pidMode"] == "task"
    assert (
        env.task_definition("pid2", pidMode="host")["pidMode"] == "host"
    )  # EC2 only: accepted at registration


STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1}]


def test_a_capacity_provider_strategy_is_refused_by_name_and_changes_nothing(env: EcsEndpoint) -> None:
    ecs = env.ecs
    env.service("web")
    refusals = [
        (ecs.create_service, {"serviceName": "other", "taskDefinition": "web", "desiredCount": 1}),
        (ecs.update_service, {"service": "web", "desiredCount": 3}),
        (ecs.run_task, {"taskDefinition": "web"}),
    ]
    for call, params in refusals:
        with pytest.raises(ClientError) as info:
            call(capacityProviderStrategy=STRATEGY, **params)
        error = info.value.response["Error"]
        assert error["Code"] == "InvalidParameterException" and "capacityProviderStrategy" in error["Message"], call
    assert [s["serviceName"] for s in ecs.describe_services(services=["web", "other"])["services"]] == ["web"]
    assert ecs.describe_services(services=["web"])["services"][0]["desiredCount"] != 3
    assert ecs.list_tasks()["taskArns"] == []


def test_enable_execute_command_is_kept_and_echoed(env: EcsEndpoint) -> None:
    ecs = env.ecs
    env.service("web")
    assert ecs.describe_services(services=["web"])["services"][0]["enableExecuteCommand"] is False
    ecs.update_service(service="web", enableExecuteCommand=True)
    assert ecs.describe_services(services=["web"])["services"][0]["enableExecuteCommand"] is True
    started = ecs.run_task(taskDefinition="web", enableExecuteCommand=True)["tasks"]
    plain = ecs.run_task(taskDefinition="web")["tasks"]
    assert [t["enableExecuteCommand"] for t in started + plain] == [True, False]
    described = ecs.describe_tasks(tasks=[started[0]["taskArn"]])["tasks"][0]
    assert described["enableExecuteCommand"] is True
