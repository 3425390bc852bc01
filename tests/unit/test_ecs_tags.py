"""ECS tags through a real endpoint and boto3 (tests/support/ecs_endpoint.py): TagResource,
UntagResource and ListTagsForResource on every taggable resource, tags given at creation and shown
with ``include=["TAGS"]``, the rules of core/tags.py answered as AWS errors that change nothing,
and propagateTags / enableECSManagedTags on the tasks RunTask and a service start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from portside.control import tags as control_tags
from portside.control import task_definitions
from portside.errors import InvalidParameterException
from tests.support.ecs_endpoint import ACCOUNT, REGION, EcsEndpoint

TEAM = [{"key": "team", "value": "blue"}]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EcsEndpoint]:
    endpoint = EcsEndpoint(tmp_path)
    yield endpoint
    endpoint.close()


def tags_of(env: EcsEndpoint, arn: str) -> list[dict[str, str]]:
    return list(env.ecs.list_tags_for_resource(resourceArn=arn)["tags"])


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def every_resource(env: EcsEndpoint) -> dict[str, str]:
    cluster = env.ecs.create_cluster(clusterName="tagged")["cluster"]["clusterArn"]
    td = env.task_definition("tagged")["taskDefinitionArn"]
    service = env.service("svc")["serviceArn"]
    [task] = env.ecs.run_task(cluster="default", taskDefinition="tagged")["tasks"]
    return {
        "cluster": cluster,
        "task-definition": td,
        "service": service,
        "task": task["taskArn"],
        "container-instance": env.instance["containerInstanceArn"],
    }


def test_tag_untag_and_list_every_kind_of_resource(env: EcsEndpoint) -> None:
    for kind, arn in every_resource(env).items():
        assert tags_of(env, arn) == [], kind
        env.ecs.tag_resource(resourceArn=arn, tags=[*TEAM, {"key": "tier", "value": ""}])
        env.ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "green"}])  # replaces the value
        assert tags_of(env, arn) == [{"key": "team", "value": "green"}, {"key": "tier", "value": ""}], kind
        env.ecs.untag_resource(resourceArn=arn, tagKeys=["team", "absent"])  # an absent key is no error
        assert tags_of(env, arn) == [{"key": "tier", "value": ""}], kind


def test_tags_given_at_creation_are_shown_where_ecs_shows_them(env: EcsEndpoint) -> None:
    ecs = env.ecs
    cluster = ecs.create_cluster(clusterName="c1", tags=TEAM)["cluster"]
    assert cluster["tags"] == TEAM
    assert "tags" not in ecs.describe_clusters(clusters=["c1"])["clusters"][0]
    assert ecs.describe_clusters(clusters=["c1"], include=["TAGS"])["clusters"][0]["tags"] == TEAM
    registered = ecs.register_task_definition(
        family="td", containerDefinitions=[{"name": "a", "image": "busybox", "memory": 32}], tags=TEAM
    )
    assert registered["tags"] == TEAM
    assert "tags" not in ecs.describe_task_definition(taskDefinition="td")
    assert ecs.describe_task_definition(taskDefinition="td", include=["TAGS"])["tags"] == TEAM
    env.task_definition("web")
    service = ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=0, tags=TEAM)[
        "service"
    ]
    assert tags_of(env, service["serviceArn"]) == TEAM
    assert "tags" not in ecs.describe_services(services=["web"])["services"][0]
    assert ecs.describe_services(services=["web"], include=["TAGS"])["services"][0]["tags"] == TEAM
    [task] = ecs.run_task(taskDefinition="web", tags=TEAM)["tasks"]
    assert task["tags"] == TEAM
    assert "tags" not in ecs.describe_tasks(tasks=[task["taskArn"]])["tasks"][0]
    assert ecs.describe_tasks(tasks=[task["taskArn"]], include=["TAGS"])["tasks"][0]["tags"] == TEAM
    instance = env.instance["containerInstanceArn"]
    ecs.tag_resource(resourceArn=instance, tags=TEAM)
    assert (
        "tags" not in ecs.describe_container_instances(containerInstances=[instance])["containerInstances"][0]
    )
    shown = ecs.describe_container_instances(containerInstances=[instance], include=["TAGS"])[
        "containerInstances"
    ][0]
    assert shown["tags"] == TEAM


def test_a_re_registration_keeps_the_instances_tags_and_adds_those_it_gives(env: EcsEndpoint) -> None:
    from portside.agent import host
    from portside.agent.registration import registration
    from portside.control import agent_protocol

    arn = env.instance["containerInstanceArn"]
    env.ecs.tag_resource(resourceArn=arn, tags=[*TEAM, {"key": "rack", "value": "r1"}])
    request = registration(
        cluster="default",
        region=REGION,
        instance_id=host.host_instance_id(),
        address="127.0.0.1",
        zone=None,
        docker_version="test",
        cpu_units=2048,
        memory_mib=4096,
        reserved_tcp=[],
        reserved_udp=[],
        attributes={},
        awsvpc=True,
    )
    request["containerInstanceArn"] = arn

    def register(tags: list[dict[str, str]]) -> Any:
        return agent_protocol.register_container_instance(env.plane, REGION, {**request, "tags": tags})

    env.call(lambda: register([{"key": "rack", "value": "r2"}, {"key": "os", "value": "linux"}]))
    assert tags_of(env, arn) == [*TEAM, {"key": "rack", "value": "r2"}, {"key": "os", "value": "linux"}]
    with pytest.raises(InvalidParameterException, match="reserved"):
        env.call(lambda: register([{"key": "aws:x", "value": "y"}]))
    assert tags_of(env, arn) == [*TEAM, {"key": "rack", "value": "r2"}, {"key": "os", "value": "linux"}]


BAD_TAGS = [
    ([{"key": "aws:owner", "value": "x"}], "aws: prefix is reserved"),
    ([{"key": "AWS:owner", "value": "x"}], "aws: prefix is reserved"),
    ([{"key": "owner", "value": "Aws:x"}], "tags[0].value"),
    ([{"key": "owner#1", "value": "x"}], "tags[0].key 'owner#1' is invalid"),
    ([{"key": "k" * 129, "value": "x"}], "128"),
    ([{"key": "k", "value": "v" * 257}], "256"),
    ([{"key": "k", "value": "1"}, {"key": "k", "value": "2"}], "tags[1].key 'k' is given twice"),
]


@pytest.mark.parametrize(("bad", "rule"), BAD_TAGS)
def test_tags_breaking_a_rule_are_refused_by_every_operation_and_change_nothing(
    env: EcsEndpoint, bad: list[dict[str, str]], rule: str
) -> None:
    ecs = env.client(parameter_validation=False)  # the lengths botocore would catch reach the server
    arns = every_resource(env)
    for arn in arns.values():
        env.ecs.tag_resource(resourceArn=arn, tags=TEAM)
        code, message = error(ecs.tag_resource, resourceArn=arn, tags=bad)
        assert (code, rule in message) == ("InvalidParameterException", True), message
        assert tags_of(env, arn) == TEAM
    for call, params in (
        (ecs.create_cluster, {"clusterName": "bad"}),
        (
            ecs.register_task_definition,
            {"family": "bad", "containerDefinitions": [{"name": "a", "image": "b", "memory": 8}]},
        ),
        (ecs.create_service, {"serviceName": "bad", "taskDefinition": "svc", "desiredCount": 0}),
        (ecs.run_task, {"taskDefinition": "svc"}),
    ):
        code, message = error(call, tags=bad, **params)
        assert (code, rule in message) == ("InvalidParameterException", True), (call, message)
    assert "bad" not in str(ecs.list_clusters()["clusterArns"])
    assert ecs.list_task_definition_families(familyPrefix="bad")["families"] == []
    assert "bad" not in str(ecs.list_services()["serviceArns"])
    assert len(ecs.list_tasks()["taskArns"]) == 1  # every_resource's task only


def test_more_than_50_tags_on_a_resource_is_limit_exceeded(env: EcsEndpoint) -> None:
    arn = env.ecs.create_cluster(clusterName="many")["cluster"]["clusterArn"]
    first = [{"key": f"k{i}", "value": ""} for i in range(50)]
    env.ecs.tag_resource(resourceArn=arn, tags=first)
    env.ecs.tag_resource(resourceArn=arn, tags=[{"key": "k0", "value": "again"}])  # a replaced key adds none
    code, message = error(env.ecs.tag_resource, resourceArn=arn, tags=[{"key": "k50", "value": ""}])
    assert code == "LimitExceededException" and "at most 50" in message
    assert len(tags_of(env, arn)) == 50


def test_unknown_or_foreign_resources_are_refused_by_name(env: EcsEndpoint) -> None:
    ecs = env.ecs
    base = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    cases = [
        (f"{base}:cluster/nope", "ClusterNotFoundException"),
        (f"{base}:service/nope/web", "ClusterNotFoundException"),  # the cluster is looked for first
        (f"{base}:task/nope/" + "a" * 32, "ClusterNotFoundException"),
        (f"{base}:service/default/nope", "ResourceNotFoundException"),
        (f"{base}:task/default/" + "a" * 32, "ResourceNotFoundException"),
        (f"{base}:task-definition/nope:1", "ResourceNotFoundException"),
        (f"{base}:container-instance/default/" + "b" * 32, "ResourceNotFoundException"),
        (f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/default", "ResourceNotFoundException"),
        (f"{base}:service/web", "InvalidParameterException"),  # a short service ARN
        (f"{base}:capacity-provider/x", "InvalidParameterException"),
        (
            f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/x/1",
            "InvalidParameterException",
        ),
        ("default", "InvalidParameterException"),
    ]
    for arn, expected in cases:
        assert error(ecs.list_tags_for_resource, resourceArn=arn)[0] == expected, arn
        assert error(ecs.tag_resource, resourceArn=arn, tags=TEAM)[0] == expected, arn
        assert error(ecs.untag_resource, resourceArn=arn, tagKeys=["team"])[0] == expected, arn
    code, message = error(
        ecs.untag_resource, resourceArn=f"{base}:cluster/default", tagKeys=["aws:ecs:clusterName"]
    )
    assert code == "InvalidParameterException" and "reserved" in message


def test_run_task_propagates_task_definition_tags_and_adds_managed_ones(env: EcsEndpoint) -> None:
    ecs = env.ecs
    env.task_definition("web", tags=[{"key": "app", "value": "web"}, {"key": "team", "value": "red"}])
    [task] = ecs.run_task(
        taskDefinition="web", tags=TEAM, propagateTags="TASK_DEFINITION", enableECSManagedTags=True
    )["tasks"]
    assert task["tags"] == [
        {"key": "app", "value": "web"},
        {"key": "team", "value": "blue"},  # the task's own value wins
        {"key": "aws:ecs:clusterName", "value": "default"},
    ]
    [plain] = ecs.run_task(taskDefinition="web")["tasks"]
    assert plain["tags"] == []
    code, message = error(ecs.run_task, taskDefinition="web", propagateTags="SERVICE")
    assert code == "InvalidParameterException" and "propagateTags" in message
    assert len(ecs.list_tasks()["taskArns"]) == 2


@pytest.mark.parametrize(
    ("propagate", "expected"),
    [
        ("SERVICE", [{"key": "team", "value": "blue"}]),
        ("TASK_DEFINITION", [{"key": "app", "value": "web"}]),
        ("NONE", []),
    ],
)
def test_a_services_tasks_carry_the_tags_it_propagates(
    env: EcsEndpoint, propagate: str, expected: list[dict[str, str]]
) -> None:
    """What the service controller gives the tasks it starts (new_task_tags, as _start_tasks calls it)."""
    env.task_definition("web", tags=[{"key": "app", "value": "web"}])
    env.ecs.create_service(
        serviceName="web",
        taskDefinition="web",
        desiredCount=0,
        tags=TEAM,
        propagateTags=propagate,
        enableECSManagedTags=True,
    )

    def tags() -> list[dict[str, str]]:
        [body] = env.store.list_services(REGION, "default")
        cluster = env.plane.require_cluster(REGION, "default")
        td = task_definitions.resolve(env.plane, REGION, "web", "missing")
        return control_tags.new_task_tags(env.plane, REGION, cluster, td, {}, service=body)

    managed = [
        {"key": "aws:ecs:clusterName", "value": "default"},
        {"key": "aws:ecs:serviceName", "value": "web"},
    ]
    assert env.call(tags) == expected + managed
    env.ecs.update_service(service="web", propagateTags="NONE", enableECSManagedTags=False)
    assert env.call(tags) == []


def test_start_task_places_one_copy_on_each_instance_named_with_its_tags(env: EcsEndpoint) -> None:
    ecs = env.ecs
    env.task_definition("web", tags=[{"key": "app", "value": "web"}])
    instance = env.instance["containerInstanceArn"]
    absent = instance.rsplit("/", 1)[0] + "/" + "c" * 32
    answer = ecs.start_task(
        taskDefinition="web",
        containerInstances=[instance, absent],
        tags=TEAM,
        propagateTags="TASK_DEFINITION",
        startedBy="me",
    )
    [task] = answer["tasks"]
    assert task["containerInstanceArn"] == instance and task["startedBy"] == "me"
    assert task["tags"] == [{"key": "app", "value": "web"}, *TEAM]
    assert answer["failures"] == [{"arn": absent, "reason": "MISSING"}]
    big = ecs.register_task_definition(
        family="big", containerDefinitions=[{"name": "a", "image": "busybox", "memory": 1_000_000}]
    )["taskDefinition"]["taskDefinitionArn"]
    full = ecs.start_task(taskDefinition=big, containerInstances=[instance])
    assert full["tasks"] == [] and [(f["arn"], f["reason"]) for f in full["failures"]] == [
        (instance, "RESOURCE:MEMORY")
    ]
    code, message = error(
        ecs.start_task,
        taskDefinition="web",
        containerInstances=[instance],
        tags=[{"key": "aws:x", "value": ""}],
    )
    assert code == "InvalidParameterException" and "reserved" in message
    assert len(ecs.list_tasks()["taskArns"]) == 1


def test_start_task_refuses_more_than_10_instances_or_a_long_started_by(env: EcsEndpoint) -> None:
    env.task_definition("web")
    instance = env.instance["containerInstanceArn"]
    raw = env.client(parameter_validation=False)
    code, message = error(raw.start_task, taskDefinition="web", containerInstances=[instance] * 11)
    assert code == "InvalidParameterException" and "1 to 10" in message
    code, message = error(
        raw.start_task, taskDefinition="web", containerInstances=[instance], startedBy="x" * 129
    )
    assert code == "InvalidParameterException" and "startedBy" in message
    assert env.ecs.list_tasks()["taskArns"] == []
