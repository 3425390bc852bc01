"""CreateCluster's options, UpdateCluster, UpdateClusterSettings, PutClusterCapacityProviders and
DeleteTaskDefinitions through a real endpoint and boto3 (tests/support/ecs_endpoint.py): stored and
echoed as ECS does; a refused request names the field and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.ecs_endpoint import ACCOUNT, REGION, EcsEndpoint

STRATEGY = [
    {"capacityProvider": "FARGATE", "weight": 1, "base": 2},
    {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EcsEndpoint]:
    endpoint = EcsEndpoint(tmp_path)
    yield endpoint
    endpoint.close()


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def described(env: EcsEndpoint, name: str = "c1") -> dict[str, Any]:
    [cluster] = env.ecs.describe_clusters(clusters=[name], include=["SETTINGS", "CONFIGURATIONS"])["clusters"]
    return dict(cluster)


def test_create_cluster_stores_and_echoes_what_it_is_given(env: EcsEndpoint) -> None:
    configuration = {"executeCommandConfiguration": {"logging": "DEFAULT"}}
    created = env.ecs.create_cluster(
        clusterName="c1",
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=STRATEGY,
        serviceConnectDefaults={"namespace": "internal"},
        settings=[{"name": "containerInsights", "value": "enabled"}],
        configuration=configuration,
    )["cluster"]
    for cluster in (created, described(env)):
        assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
        assert cluster["defaultCapacityProviderStrategy"] == STRATEGY
        assert cluster["serviceConnectDefaults"] == {"namespace": "internal"}
        assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
        assert cluster["configuration"] == configuration
    plain = env.ecs.describe_clusters(clusters=["c1"])["clusters"][0]
    assert (
        "settings" not in plain
        and "configuration" not in plain
        and plain["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    )


def test_update_cluster_and_its_settings(env: EcsEndpoint) -> None:
    env.ecs.create_cluster(clusterName="c1")
    assert described(env)["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    answer = env.ecs.update_cluster_settings(
        cluster="c1", settings=[{"name": "containerInsights", "value": "enhanced"}]
    )
    assert answer["cluster"]["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    configuration = {
        "executeCommandConfiguration": {
            "logging": "OVERRIDE",
            "logConfiguration": {"cloudWatchLogGroupName": "exec"},
        }
    }
    answer = env.ecs.update_cluster(
        cluster="c1", configuration=configuration, serviceConnectDefaults={"namespace": "ns"}
    )
    assert answer["cluster"]["configuration"] == configuration
    cluster = described(env)
    assert cluster["serviceConnectDefaults"] == {"namespace": "ns"}
    assert cluster["configuration"] == configuration
    assert cluster["settings"] == [
        {"name": "containerInsights", "value": "enhanced"}
    ]  # untouched by that call


def test_put_cluster_capacity_providers_replaces_both(env: EcsEndpoint) -> None:
    env.ecs.create_cluster(clusterName="c1", capacityProviders=["FARGATE"])
    answer = env.ecs.put_cluster_capacity_providers(
        cluster="c1", capacityProviders=["FARGATE", "FARGATE_SPOT"], defaultCapacityProviderStrategy=STRATEGY
    )["cluster"]
    assert (answer["capacityProviders"], answer["defaultCapacityProviderStrategy"]) == (
        ["FARGATE", "FARGATE_SPOT"],
        STRATEGY,
    )
    env.ecs.put_cluster_capacity_providers(
        cluster="c1", capacityProviders=[], defaultCapacityProviderStrategy=[]
    )
    cluster = described(env)
    assert (cluster["capacityProviders"], cluster["defaultCapacityProviderStrategy"]) == ([], [])


REFUSED = [
    (
        {"capacityProviders": ["my-asg"]},
        "capacityProviders[0]: the specified capacity provider 'my-asg' does not exist",
    ),
    (
        {
            "capacityProviders": ["FARGATE"],
            "defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        },
        "defaultCapacityProviderStrategy[0]: the capacity provider 'FARGATE_SPOT' is not associated",
    ),
    (
        {
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": [
                {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
                {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 1},
            ],
        },
        "only one capacity provider can have a base",
    ),
    (
        {
            "capacityProviders": ["FARGATE"],
            "defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 0}],
        },
        "weight above 0",
    ),
    ({"settings": [{"name": "containerInsights", "value": "on"}]}, "settings[0].value 'on' is invalid"),
    (
        {"configuration": {"executeCommandConfiguration": {"logging": "OVERRIDE"}}},
        "logConfiguration is required",
    ),
]


@pytest.mark.parametrize(("params", "message"), REFUSED)
def test_bad_cluster_options_are_refused_and_change_nothing(
    env: EcsEndpoint, params: dict[str, Any], message: str
) -> None:
    code, text = error(env.ecs.create_cluster, clusterName="bad", **params)
    assert code == "InvalidParameterException" and message in text
    assert "bad" not in str(env.ecs.list_clusters()["clusterArns"])
    env.ecs.create_cluster(clusterName="c1")
    before = described(env)
    if "settings" in params:
        call, args = env.ecs.update_cluster_settings, {"settings": params["settings"]}
    elif "configuration" in params:
        call, args = env.ecs.update_cluster, params
    else:
        call, args = env.ecs.put_cluster_capacity_providers, {"defaultCapacityProviderStrategy": [], **params}
    code, text = error(call, cluster="c1", **args)
    assert code == "InvalidParameterException" and message in text
    assert described(env) == before


def test_cluster_updates_of_a_missing_cluster_are_cluster_not_found(env: EcsEndpoint) -> None:
    settings = [{"name": "containerInsights", "value": "enabled"}]
    for call, params in (
        (env.ecs.update_cluster, {"settings": settings}),
        (env.ecs.update_cluster_settings, {"settings": settings}),
        (
            env.ecs.put_cluster_capacity_providers,
            {"capacityProviders": [], "defaultCapacityProviderStrategy": []},
        ),
    ):
        assert error(call, cluster="nope", **params)[0] == "ClusterNotFoundException"


def test_delete_task_definitions_deletes_inactive_revisions_only(env: EcsEndpoint) -> None:
    ecs = env.ecs
    for _ in range(3):
        env.task_definition("web")
    ecs.deregister_task_definition(taskDefinition="web:1")
    ecs.deregister_task_definition(taskDefinition="web:2")
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web"
    answer = ecs.delete_task_definitions(taskDefinitions=["web:1", f"{arn}:2", "web:3", "web:9", "web"])
    assert [(d["taskDefinitionArn"], d["status"]) for d in answer["taskDefinitions"]] == [
        (f"{arn}:1", "DELETE_IN_PROGRESS"),
        (f"{arn}:2", "DELETE_IN_PROGRESS"),
    ]
    assert [(f["arn"], f["reason"]) for f in answer["failures"]] == [
        (f"{arn}:3", "TASK_DEFINITION_NOT_INACTIVE"),
        (f"{arn}:9", "MISSING"),
        (arn, "INVALID"),
    ]
    assert (
        ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]["status"]
        == "DELETE_IN_PROGRESS"
    )
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == [
        f"{arn}:1",
        f"{arn}:2",
    ]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == [f"{arn}:3"]
    assert error(ecs.run_task, taskDefinition="web:1")[0] == "ClientException"  # nothing new runs it
    assert (
        error(ecs.create_service, serviceName="s", taskDefinition="web:2", desiredCount=0)[0]
        == "ClientException"
    )
    env.task_definition("web")
    assert (
        ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"] == 4
    )  # never reused


def test_the_other_refusals_name_their_rule(env: EcsEndpoint) -> None:
    raw = env.client(parameter_validation=False)
    env.ecs.create_cluster(clusterName="c1")
    before = described(env)
    cases = [
        (
            raw.put_cluster_capacity_providers,
            {
                "cluster": "c1",
                "capacityProviders": ["FARGATE", "FARGATE"],
                "defaultCapacityProviderStrategy": [],
            },
            "given more than once",
        ),
        (
            raw.put_cluster_capacity_providers,
            {
                "cluster": "c1",
                "capacityProviders": ["FARGATE"],
                "defaultCapacityProviderStrategy": [
                    {"capacityProvider": "FARGATE", "weight": 1},
                    {"capacityProvider": "FARGATE", "weight": 1},
                ],
            },
            "defaultCapacityProviderStrategy[1]: 'FARGATE' is given more than once",
        ),
        (
            raw.update_cluster,
            {"cluster": "c1", "serviceConnectDefaults": {"namespace": ""}},
            "namespace can not be blank",
        ),
        (
            raw.update_cluster,
            {
                "cluster": "c1",
                "configuration": {
                    "executeCommandConfiguration": {
                        "logging": "DEFAULT",
                        "logConfiguration": {"cloudWatchLogGroupName": "x"},
                    }
                },
            },
            "only when logging is OVERRIDE",
        ),
        (raw.update_cluster_settings, {"cluster": "c1", "settings": []}, "settings can not be empty"),
    ]
    for call, params, message in cases:
        with pytest.raises(ClientError) as info:
            call(**params)
        assert info.value.response["Error"]["Code"] == "InvalidParameterException", params
        assert message in info.value.response["Error"]["Message"], info.value.response["Error"]["Message"]
    assert described(env) == before
    with pytest.raises(ClientError) as info:
        raw.delete_task_definitions(taskDefinitions=[f"web:{n}" for n in range(1, 12)])
    assert "1 to 10" in info.value.response["Error"]["Message"]
