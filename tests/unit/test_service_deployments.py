"""ECS's service deployment records from portside's deployments (core/service_deployments.py), and
ListServiceDeployments / DescribeServiceDeployments through a real endpoint and boto3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from portside.core import service_deployments as records
from tests.support.ecs_endpoint import ACCOUNT, REGION, EcsEndpoint

SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/default/web"


def deployment(n: int, status: str, rollout: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ecs-svc/{n:019d}",
        "status": status,
        "rolloutState": rollout,
        "rolloutStateReason": f"reason {n}",
        "taskDefinition": "td",
        "desiredCount": 2,
        "failedTasks": 0,
        "createdAt": float(n),
        "updatedAt": float(n) + 0.5,
        **extra,
    }


def service(deployments: list[dict[str, Any]], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "serviceArn": SERVICE_ARN,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default",
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        "deployments": deployments,
        records.HISTORY_KEY: history or [],
    }


def statuses(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["serviceDeploymentArn"].rsplit("/", 1)[-1][-1], r["status"]) for r in records.render(body, {})]


def test_statuses_map_rollout_states_as_ecs_names_them() -> None:
    done = deployment(1, "ACTIVE", "COMPLETED")
    superseded = deployment(2, "ACTIVE", "IN_PROGRESS")
    current = deployment(3, "PRIMARY", "IN_PROGRESS")
    assert statuses(service([current, superseded], [done])) == [
        ("3", "IN_PROGRESS"),
        ("2", "STOPPED"),
        ("1", "SUCCESSFUL"),
    ]
    failed = deployment(4, "PRIMARY", "FAILED")
    assert statuses(service([failed]))[0] == ("4", "STOPPED")  # failed, no rollback
    bad = deployment(5, "ACTIVE", "FAILED", **{records.ROLLED_BACK_BY: "ecs-svc/0000000000000000006"})
    rollback = deployment(6, "PRIMARY", "IN_PROGRESS", **{records.ROLLBACK_OF: bad["id"]})
    assert statuses(service([rollback, bad])) == [("5", "ROLLBACK_IN_PROGRESS")]  # the rollback is part of it
    rollback["rolloutState"] = "COMPLETED"
    assert statuses(service([rollback, bad])) == [("5", "ROLLBACK_SUCCESSFUL")]
    rollback["rolloutState"] = "FAILED"
    assert statuses(service([rollback, bad])) == [("5", "ROLLBACK_FAILED")]


def test_a_record_names_its_revisions_counts_and_circuit_breaker() -> None:
    old = deployment(1, "ACTIVE", "COMPLETED")
    new = deployment(2, "PRIMARY", "IN_PROGRESS", failedTasks=3)
    [latest, first] = records.render(service([new, old]), {new["id"]: (1, 1), old["id"]: (2, 0)})
    base = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    assert latest["serviceDeploymentArn"] == f"{base}:service-deployment/default/web/{2:019d}"
    assert latest["targetServiceRevision"] == {
        "arn": f"{base}:service-revision/default/web/{2:019d}",
        "requestedTaskCount": 2,
        "runningTaskCount": 1,
        "pendingTaskCount": 1,
    }
    assert [r["arn"] for r in latest["sourceServiceRevisions"]] == [first["targetServiceRevision"]["arn"]]
    assert latest["deploymentCircuitBreaker"] == {"status": "MONITORING", "failureCount": 3, "threshold": 10}
    assert "finishedAt" not in latest and first["finishedAt"] == 1.5


def test_retired_deployments_are_kept_newest_last_up_to_the_limit() -> None:
    body = service([])
    for n in range(records.MAX_HISTORY + 5):
        records.retire(body, deployment(n, "ACTIVE", "COMPLETED"), now=1000.0 + n)
    kept = body[records.HISTORY_KEY]
    assert len(kept) == records.MAX_HISTORY and kept[-1]["id"].endswith(f"{records.MAX_HISTORY + 4:019d}")
    assert kept[-1]["finishedAt"] == 1000.0 + records.MAX_HISTORY + 4


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EcsEndpoint]:
    endpoint = EcsEndpoint(tmp_path)
    yield endpoint
    endpoint.close()


def test_list_and_describe_through_the_api(env: EcsEndpoint) -> None:
    ecs = env.ecs
    env.service("web")
    env.clock.now += 60
    env.task_definition("web")
    ecs.update_service(service="web", taskDefinition="web:2")
    listed = ecs.list_service_deployments(service="web")["serviceDeployments"]
    assert [d["status"] for d in listed] == ["IN_PROGRESS", "STOPPED"]
    assert all(d["serviceArn"] == SERVICE_ARN for d in listed)
    assert [
        d["status"]
        for d in ecs.list_service_deployments(service="web", status=["STOPPED"])["serviceDeployments"]
    ] == ["STOPPED"]
    middle = datetime.fromtimestamp(env.clock.now - 30, tz=UTC)
    after = ecs.list_service_deployments(service="web", createdAt={"after": middle})["serviceDeployments"]
    assert [d["status"] for d in after] == ["IN_PROGRESS"]
    before = ecs.list_service_deployments(service="web", createdAt={"before": middle})["serviceDeployments"]
    assert [d["status"] for d in before] == ["STOPPED"]
    first = ecs.list_service_deployments(service="web", maxResults=1)
    assert len(first["serviceDeployments"]) == 1 and first["nextToken"]
    arns = [d["serviceDeploymentArn"] for d in listed]
    missing = arns[0].rsplit("/", 1)[0] + "/1234"
    described = ecs.describe_service_deployments(serviceDeploymentArns=[*arns, missing, "nonsense"])
    assert [d["serviceDeploymentArn"] for d in described["serviceDeployments"]] == arns
    assert described["serviceDeployments"][0]["targetServiceRevision"]["requestedTaskCount"] == 0
    assert [(f["arn"], f["reason"]) for f in described["failures"]] == [
        (missing, "MISSING"),
        ("nonsense", "MISSING"),
    ]


def test_refusals(env: EcsEndpoint) -> None:
    raw = env.client(parameter_validation=False)
    with pytest.raises(ClientError) as info:
        env.ecs.list_service_deployments(service="absent")
    assert info.value.response["Error"]["Code"] == "ServiceNotFoundException"
    with pytest.raises(ClientError) as info:
        raw.describe_service_deployments(serviceDeploymentArns=[])
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
