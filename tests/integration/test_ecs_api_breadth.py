"""ECS API breadth against a real portside server (its own agent, the real Docker Engine), through
real boto3 and the AWS CLI v1: a service with propagateTags SERVICE whose running tasks carry its
tags; tags, cluster settings, account settings, task definition deletion and service deployments
driven by ``python -m awscli ecs``; refusals reach the CLI as ECS's errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_services import delete_service, task_definition, tasks_of
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

TEAM = [{"key": "team", "value": "blue"}]


def test_a_service_propagating_its_tags_starts_tasks_that_carry_them(ecs: Any, busybox_image: str) -> None:
    td = task_definition(ecs, busybox_image, "breadth-tags")
    ecs.tag_resource(resourceArn=td, tags=[{"key": "from", "value": "task-definition"}])
    ecs.create_service(
        serviceName="tagged",
        taskDefinition=td,
        desiredCount=1,
        tags=TEAM,
        propagateTags="SERVICE",
        enableECSManagedTags=True,
    )
    try:

        def running() -> list[dict[str, Any]] | None:
            tasks = tasks_of(ecs, "tagged")
            return tasks if tasks and all(t["lastStatus"] == "RUNNING" for t in tasks) else None

        [task] = eventually(running, 90, 0.5, "the service's task RUNNING")
        [described] = ecs.describe_tasks(tasks=[task["taskArn"]], include=["TAGS"])["tasks"]
        expected = [
            *TEAM,
            {"key": "aws:ecs:clusterName", "value": "default"},
            {"key": "aws:ecs:serviceName", "value": "tagged"},
        ]
        assert described["tags"] == expected  # the service's, not the task definition's
        assert ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"] == expected
        ecs.tag_resource(resourceArn=task["taskArn"], tags=[{"key": "checked", "value": "yes"}])
        ecs.untag_resource(resourceArn=task["taskArn"], tagKeys=["team"])
        after = ecs.list_tags_for_resource(resourceArn=task["taskArn"])["tags"]
        assert {"key": "checked", "value": "yes"} in after and {"key": "team", "value": "blue"} not in after
        assert running() is not None  # a tag write leaves the running task alone
        [record] = ecs.list_service_deployments(service="tagged")["serviceDeployments"]
        assert record["status"] in ("IN_PROGRESS", "SUCCESSFUL")
    finally:
        delete_service(ecs, "tagged")

    def inactive() -> bool:
        return bool(ecs.describe_services(services=["tagged"])["services"][0]["status"] == "INACTIVE")

    eventually(inactive, 90, 0.5, "the deleted service INACTIVE")
    [kept] = ecs.list_service_deployments(service="tagged")[
        "serviceDeployments"
    ]  # outlives the service's deployments
    assert kept["serviceDeploymentArn"] == record["serviceDeploymentArn"] and kept["status"] in (
        "SUCCESSFUL",
        "STOPPED",
    )


@pytest.fixture
def aws(portside: PortsideProcess, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``aws(*args)``: the AWS CLI v1 (``python -m awscli``, never from PATH) against the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="anything",
        AWS_SECRET_ACCESS_KEY="anything",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    base = [
        sys.executable,
        "-m",
        "awscli",
        "ecs",
        "--endpoint-url",
        portside.endpoint,
        "--region",
        "us-east-1",
        "--output",
        "json",
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=90, check=False
        )

    return run


def ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_the_aws_cli_drives_the_new_operations(aws: Callable[..., Any], ecs: Any, busybox_image: str) -> None:
    cluster = ok(
        aws(
            "create-cluster",
            "--cluster-name",
            "breadth-cli",
            "--capacity-providers",
            "FARGATE",
            "--tags",
            "key=team,value=blue",
        )
    )["cluster"]
    arn = cluster["clusterArn"]
    assert cluster["capacityProviders"] == ["FARGATE"] and cluster["tags"] == TEAM
    ok(aws("tag-resource", "--resource-arn", arn, "--tags", "key=tier,value=web"))
    ok(aws("untag-resource", "--resource-arn", arn, "--tag-keys", "team"))
    assert ok(aws("list-tags-for-resource", "--resource-arn", arn))["tags"] == [
        {"key": "tier", "value": "web"}
    ]
    refused = aws("tag-resource", "--resource-arn", arn, "--tags", "key=aws:owner,value=me")
    assert (
        refused.returncode != 0
        and "InvalidParameterException" in refused.stderr
        and "reserved" in refused.stderr
    )
    assert ok(aws("list-tags-for-resource", "--resource-arn", arn))["tags"] == [
        {"key": "tier", "value": "web"}
    ]

    updated = ok(
        aws(
            "update-cluster-settings",
            "--cluster",
            "breadth-cli",
            "--settings",
            "name=containerInsights,value=enhanced",
        )
    )
    assert updated["cluster"]["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    ok(
        aws(
            "put-cluster-capacity-providers",
            "--cluster",
            "breadth-cli",
            "--capacity-providers",
            "FARGATE",
            "FARGATE_SPOT",
            "--default-capacity-provider-strategy",
            "capacityProvider=FARGATE_SPOT,weight=1",
        )
    )
    [described] = ecs.describe_clusters(clusters=["breadth-cli"])["clusters"]
    assert described["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
    ]
    missing = aws("update-cluster", "--cluster", "breadth-none", "--service-connect-defaults", "namespace=ns")
    assert missing.returncode != 0 and "ClusterNotFoundException" in missing.stderr

    setting = ok(aws("put-account-setting-default", "--name", "awsvpcTrunking", "--value", "enabled"))[
        "setting"
    ]
    assert setting["value"] == "enabled"
    try:
        listed = ok(aws("list-account-settings", "--effective-settings", "--name", "awsvpcTrunking"))[
            "settings"
        ]
        assert [(s["name"], s["value"]) for s in listed] == [("awsvpcTrunking", "enabled")]
    finally:
        ok(aws("delete-account-setting", "--name", "awsvpcTrunking"))
    assert ok(aws("list-account-settings"))["settings"] == []

    td = task_definition(ecs, busybox_image, "breadth-cli")
    ok(aws("deregister-task-definition", "--task-definition", td))
    deleted = ok(aws("delete-task-definitions", "--task-definitions", td, "breadth-cli:99"))
    assert [d["status"] for d in deleted["taskDefinitions"]] == ["DELETE_IN_PROGRESS"]
    assert [f["reason"] for f in deleted["failures"]] == ["MISSING"]
    ecs.delete_cluster(cluster="breadth-cli")
