"""Shapes against botocore's own models, serializer and parser.

Input validation runs on real ECS / ELBv2 / Application Auto Scaling operation models. The query
protocol is checked in both directions with botocore itself: ``create_serializer('query')``
produces the form body that :func:`parse_query_params` must turn back into the same params, and
``create_parser('query')`` must read back what :func:`render_query_response` writes. The last
test drives the whole loop with a real boto3 client over a socket.
"""

from __future__ import annotations

import enum
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from portside.api import shapes
from portside.errors import InvalidParameterException, SerializationError


def op(service: str, action: str) -> OperationModel:
    model = shapes.operation_model(service, action)
    assert model is not None
    return model


def task_definition(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "family": "web",
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [
            {
                "name": "app",
                "image": "busybox:latest",
                "memory": 128,
                "cpu": 64,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
                "dockerLabels": {"com.example.team": "edge"},
                "environment": [{"name": "MODE", "value": "prod"}],
            }
        ],
        "tags": [{"key": "team", "value": "edge"}],
    }
    body.update(overrides)
    return body


def first_container(**overrides: Any) -> dict[str, Any]:
    body = task_definition()
    body["containerDefinitions"][0].update(overrides)
    return body


# ----------------------------------------------------------------------------- models


def test_operation_models_are_cached_and_unknown_actions_are_none() -> None:
    first = shapes.operation_model("ecs", "RegisterTaskDefinition")
    assert first is not None and first.name == "RegisterTaskDefinition"
    assert shapes.operation_model("ecs", "RegisterTaskDefinition") is first
    assert shapes.service_model("ecs") is shapes.service_model("ecs")
    assert shapes.operation_model("ecs", "NoSuchAction") is None
    assert shapes.operation_model("elbv2", "CreateTargetGroup") is not None


# ----------------------------------------------------------------------------- validate_input: types


def test_valid_task_definition_passes() -> None:
    shapes.validate_input(op("ecs", "RegisterTaskDefinition"), task_definition())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            first_container(memory="512"),
            "STRING_VALUE can not be converted to an Integer (at 'containerDefinitions[0].memory')",
        ),
        (
            first_container(memory=True),
            "TRUE_VALUE can not be converted to an Integer (at 'containerDefinitions[0].memory')",
        ),
        (
            first_container(memory=512.5),
            "NUMBER_VALUE can not be converted to an Integer (at 'containerDefinitions[0].memory')",
        ),
        (
            first_container(memory=2**31),
            "NUMBER_VALUE can not be converted to an Integer (at 'containerDefinitions[0].memory')",
        ),
        (
            first_container(name=5),
            "NUMBER_VALUE can not be converted to a String (at 'containerDefinitions[0].name')",
        ),
        (
            first_container(essential="true"),
            "STRING_VALUE can not be converted to an Boolean (at 'containerDefinitions[0].essential')",
        ),
        (
            first_container(essential=1),
            "NUMBER_VALUE can not be converted to a Boolean (at 'containerDefinitions[0].essential')",
        ),
        (task_definition(containerDefinitions="app"), "Expected list or null (at 'containerDefinitions')"),
        (
            task_definition(containerDefinitions={"name": "app"}),
            "Start of structure or map found where not expected (at 'containerDefinitions')",
        ),
        (
            task_definition(containerDefinitions=[["app"]]),
            "Start of list found where not expected (at 'containerDefinitions[0]')",
        ),
        (
            first_container(portMappings=[{"containerPort": "8080"}]),
            "STRING_VALUE can not be converted to an Integer (at 'containerDefinitions[0].portMappings[0].containerPort')",
        ),
        (
            first_container(dockerLabels={"com.example": 5}),
            "NUMBER_VALUE can not be converted to a String (at 'containerDefinitions[0].dockerLabels.com.example')",
        ),
        (
            first_container(dockerLabels=["a"]),
            "Start of list found where not expected (at 'containerDefinitions[0].dockerLabels')",
        ),
        (
            first_container(logConfiguration="json-file"),
            "Expected map or null (at 'containerDefinitions[0].logConfiguration')",
        ),
    ],
)
def test_wrong_json_types_are_serialization_errors(body: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError) as info:
        shapes.validate_input(op("ecs", "RegisterTaskDefinition"), body)
    assert info.value.code == "SerializationException"
    assert info.value.message == message


def test_body_must_be_an_object() -> None:
    with pytest.raises(SerializationError) as info:
        shapes.validate_input(op("ecs", "ListClusters"), [1])  # type: ignore[arg-type]
    assert info.value.message == "Start of list found where not expected"


def test_serialization_errors_win_over_validation_errors() -> None:
    body = first_container(memory="512")
    del body["family"]
    with pytest.raises(SerializationError):
        shapes.validate_input(op("ecs", "RegisterTaskDefinition"), body)


def test_timestamps_doubles_and_longs() -> None:
    submit = op("ecs", "SubmitTaskStateChange")
    for stamp in (1767225600, 1767225600.5, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123+02:00"):
        shapes.validate_input(submit, {"pullStartedAt": stamp})
    with pytest.raises(SerializationError) as info:
        shapes.validate_input(submit, {"pullStartedAt": "yesterday"})
    assert info.value.message == "STRING_VALUE can not be converted to a Timestamp (at 'pullStartedAt')"

    register = op("ecs", "RegisterContainerInstance")
    resources = [
        {"name": "CPU", "type": "INTEGER", "integerValue": 2048, "longValue": 2**40, "doubleValue": 1}
    ]
    shapes.validate_input(register, {"totalResources": resources})
    with pytest.raises(SerializationError) as info:
        shapes.validate_input(register, {"totalResources": [{"doubleValue": "1.5"}]})
    assert (
        info.value.message
        == "STRING_VALUE can not be converted to a Double (at 'totalResources[0].doubleValue')"
    )
    with pytest.raises(SerializationError):
        shapes.validate_input(register, {"totalResources": [{"longValue": 2**63}]})


def test_blobs_are_base64_with_length_limits() -> None:
    encrypt = op("kms", "Encrypt")
    shapes.validate_input(encrypt, {"KeyId": "k", "Plaintext": "aGVsbG8="})
    with pytest.raises(SerializationError) as info:
        shapes.validate_input(encrypt, {"KeyId": "k", "Plaintext": "not base64!"})
    assert "at 'Plaintext'" in info.value.message
    with pytest.raises(InvalidParameterException) as err:
        shapes.validate_input(encrypt, {"KeyId": "k", "Plaintext": b"x" * 4097})
    # Plaintext is marked sensitive: AWS leaves the value out of the message.
    assert err.value.message == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_unknown_members_and_nulls_are_ignored() -> None:
    body = task_definition(futureFeature={"x": 1}, cpu=None)
    body["containerDefinitions"][0]["notInTheModel"] = [1, 2]
    shapes.validate_input(op("ecs", "RegisterTaskDefinition"), body)


# ----------------------------------------------------------------------------- validate_input: constraints


def validation_error(service: str, action: str, body: dict[str, Any]) -> InvalidParameterException:
    with pytest.raises(InvalidParameterException) as info:
        shapes.validate_input(op(service, action), body)
    return info.value


def test_missing_family_is_named() -> None:
    body = task_definition()
    del body["family"]
    err = validation_error("ecs", "RegisterTaskDefinition", body)
    assert err.code == "InvalidParameterException"
    assert err.message == (
        "1 validation error detected: Value null at 'family' failed to satisfy constraint: Member must not be null"
    )


def test_null_required_member_and_nested_paths() -> None:
    # Reported in model member order, whatever order the client sent.
    body = task_definition(family=None)
    body["containerDefinitions"][0]["ulimits"] = [{"name": "nofile", "softLimit": 1024}]
    body["containerDefinitions"][0]["portMappings"][0]["protocol"] = "sctp"
    err = validation_error("ecs", "RegisterTaskDefinition", body)
    assert err.message == (
        "3 validation errors detected: "
        "Value null at 'family' failed to satisfy constraint: Member must not be null; "
        "Value 'sctp' at 'containerDefinitions.1.member.portMappings.1.member.protocol' failed to satisfy "
        "constraint: Member must satisfy enum value set: [tcp, udp]; "
        "Value null at 'containerDefinitions.1.member.ulimits.1.member.hardLimit' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_bad_network_mode_enum() -> None:
    err = validation_error("ecs", "RegisterTaskDefinition", task_definition(networkMode="overlay"))
    assert err.code == "InvalidParameterException"
    assert err.message == (
        "1 validation error detected: Value 'overlay' at 'networkMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [bridge, host, awsvpc, none]"
    )


def test_run_task_count_has_no_range_in_the_model() -> None:
    # The API reference says "up to 10 tasks for each call", but the model states no max for
    # RunTask.count (BoxedInteger), so the cap belongs to the RunTask handler, not to shapes.
    run_task = op("ecs", "RunTask")
    count = run_task.input_shape.members["count"]
    assert "max" not in count.metadata
    shapes.validate_input(run_task, {"taskDefinition": "web:1", "count": 11})


def test_list_and_string_lengths_from_the_model() -> None:
    tags = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    err = validation_error("ecs", "RegisterTaskDefinition", task_definition(tags=tags))
    assert err.message.startswith("1 validation error detected: Value '[{key=k0, value=v}, ")
    assert err.message.endswith(
        "' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
    )

    err = validation_error("ecs", "RegisterTaskDefinition", task_definition(tags=[{"key": "", "value": "v"}]))
    assert err.message == (
        "1 validation error detected: Value '' at 'tags.1.member.key' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


def test_many_errors_are_counted_but_listed_briefly() -> None:
    body = task_definition(tags=[{"key": "k" * 129, "value": "v"} for _ in range(12)])
    err = validation_error("ecs", "RegisterTaskDefinition", body)
    assert err.message.startswith("12 validation errors detected: ")
    assert err.message.endswith("; and 2 more")
    assert err.message.count("failed to satisfy constraint") == 10


def test_elbv2_number_ranges_use_validation_error() -> None:
    # The exact message real ELBv2 returns for Port=0
    # (kubernetes-sigs/aws-load-balancer-controller#4014).
    create = {"Name": "web", "Protocol": "HTTP", "Port": 0, "VpcId": "vpc-1"}
    err = validation_error("elbv2", "CreateTargetGroup", create)
    assert err.code == "ValidationError"
    assert err.message == (
        "1 validation error detected: Value '0' at 'port' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
    err = validation_error(
        "elbv2", "CreateTargetGroup", {**create, "Port": 80, "HealthCheckIntervalSeconds": 400}
    )
    assert err.message == (
        "1 validation error detected: Value '400' at 'healthCheckIntervalSeconds' failed to satisfy constraint: "
        "Member must have value less than or equal to 300"
    )


def test_application_autoscaling_uses_validation_exception() -> None:
    err = validation_error(
        "application-autoscaling", "RegisterScalableTarget", {"ResourceId": "service/c/web"}
    )
    assert err.code == "ValidationException"
    assert (
        "Value null at 'serviceNamespace' failed to satisfy constraint: Member must not be null"
        in err.message
    )
    assert "Value null at 'scalableDimension'" in err.message


# ----------------------------------------------------------------------------- query protocol: parse


def wire_form(operation: OperationModel, params: dict[str, Any]) -> dict[str, str]:
    """Serialise with botocore, send through AWSRequest as boto3 does, decode as a server would."""
    request = create_serializer("query").serialize_to_request(params, operation)
    prepared = AWSRequest(method="POST", url="http://localhost/", data=request["body"]).prepare()
    body = prepared.body if isinstance(prepared.body, str) else prepared.body.decode()
    return dict(parse_qsl(body, keep_blank_values=True, strict_parsing=True))


ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateTargetGroup",
        {
            "Name": "web",
            "Protocol": "HTTP",
            "Port": 80,
            "VpcId": "vpc-1",
            "HealthCheckEnabled": False,
            "HealthCheckPath": "/health?full=1&x=a b",
            "HealthCheckIntervalSeconds": 10,
            "HealthyThresholdCount": 2,
            "Matcher": {"HttpCode": "200-299"},
            "TargetType": "instance",
            "Tags": [{"Key": "team", "Value": "edge & core"}, {"Key": "ü", "Value": ""}],
        },
    ),
    (
        "CreateListener",
        {
            "LoadBalancerArn": "arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/lb/1",
            "Protocol": "HTTP",
            "Port": 8080,
            "DefaultActions": [
                {
                    "Type": "forward",
                    "Order": 2,
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": "arn:a", "Weight": 90},
                            {"TargetGroupArn": "arn:b", "Weight": 10},
                        ],
                        "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
                    },
                },
                {
                    "Type": "authenticate-oidc",
                    "Order": 1,
                    "AuthenticateOidcConfig": {
                        "Issuer": "https://idp",
                        "AuthorizationEndpoint": "https://idp/auth",
                        "TokenEndpoint": "https://idp/token",
                        "UserInfoEndpoint": "https://idp/me",
                        "ClientId": "c",
                        "AuthenticationRequestExtraParams": {"prompt": "login", "display": "page=1&x"},
                    },
                },
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {
                        "StatusCode": "503",
                        "ContentType": "text/plain",
                        "MessageBody": "down",
                    },
                },
            ],
        },
    ),
    (
        "RegisterTargets",
        {
            "TargetGroupArn": "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/web/0123456789abcdef",
            "Targets": [{"Id": "i-0abc", "Port": 32768}, {"Id": "i-0abc", "Port": 32769}, {"Id": "10.0.0.1"}],
        },
    ),
    (
        "ModifyTargetGroupAttributes",
        {
            "TargetGroupArn": "arn:tg",
            "Attributes": [
                {"Key": "deregistration_delay.timeout_seconds", "Value": "30"},
                {"Key": "stickiness.enabled", "Value": "true"},
            ],
        },
    ),
    ("AddTags", {"ResourceArns": ["arn:a", "arn:b"], "Tags": [{"Key": "k", "Value": "v"}]}),
    ("DescribeTargetGroups", {"Names": [], "PageSize": 400}),
]


@pytest.mark.parametrize(("action", "params"), ROUND_TRIPS, ids=[a for a, _ in ROUND_TRIPS])
def test_parse_query_params_inverts_botocores_serializer(action: str, params: dict[str, Any]) -> None:
    operation = op("elbv2", action)
    form = wire_form(operation, params)
    assert form["Action"] == action
    parsed = shapes.parse_query_params(operation, form)
    assert parsed == params
    shapes.validate_input(operation, parsed)


def test_list_order_follows_the_index_not_the_form_order() -> None:
    form = {"Names.member.10": "j", "Names.member.2": "b", "Names.member.1": "a"}
    assert shapes.parse_query_params(op("elbv2", "DescribeTargetGroups"), form) == {"Names": ["a", "b", "j"]}


def test_unknown_query_params_are_ignored() -> None:
    form = {"Action": "DescribeTargetGroups", "Version": "2015-12-01", "Bogus": "1", "X-Amz-Date": "x"}
    assert shapes.parse_query_params(op("elbv2", "DescribeTargetGroups"), form) == {}


@pytest.mark.parametrize(
    ("action", "form", "message"),
    [
        (
            "CreateTargetGroup",
            {"Name": "w", "Port": "eighty"},
            "Invalid value for parameter Port: 'eighty' is not a valid integer",
        ),
        (
            "CreateTargetGroup",
            {"Port": "99999999999"},
            "Invalid value for parameter Port: '99999999999' is not a valid integer",
        ),
        (
            "CreateTargetGroup",
            {"HealthCheckEnabled": "yes"},
            "Invalid value for parameter HealthCheckEnabled: 'yes' is not a valid boolean (true or false)",
        ),
        (
            "CreateTargetGroup",
            {"Matcher": "200"},
            "Invalid value for parameter Matcher: expected nested parameters, got a value",
        ),
        (
            "CreateTargetGroup",
            {"Name.x": "w"},
            "Invalid value for parameter Name: expected a single string value, got nested parameters",
        ),
        (
            "RegisterTargets",
            {"Targets.member.x.Id": "i-1"},
            "x is not a valid index (parameter Targets.member.x)",
        ),
        (
            "RegisterTargets",
            {"Targets.member.0.Id": "i-1"},
            "0 is not a valid index (parameter Targets.member.0)",
        ),
        (
            "RegisterTargets",
            {"Targets.member.01.Id": "i-1"},
            "01 is not a valid index (parameter Targets.member.01)",
        ),
        (
            "RegisterTargets",
            {"Targets.item.1.Id": "i-1"},
            "Unexpected parameter Targets.item: members of Targets are named Targets.member.N",
        ),
        (
            "DescribeTargetGroups",
            {"Names": "web"},
            "Invalid value for parameter Names: expected list members as Names.member.N",
        ),
        (
            "DescribeTargetGroups",
            {"Names": "", "Names.member.1": "web"},
            "Invalid value for parameter Names: given both as a value and with members",
        ),
    ],
)
def test_bad_query_values_name_the_parameter(action: str, form: dict[str, str], message: str) -> None:
    with pytest.raises(SerializationError) as info:
        shapes.parse_query_params(op("elbv2", action), form)
    assert info.value.message == message


def test_parsed_query_params_then_validate() -> None:
    operation = op("elbv2", "CreateTargetGroup")
    parsed = shapes.parse_query_params(
        operation, {"Action": "CreateTargetGroup", "Port": "80", "TargetType": "pod"}
    )
    err = validation_error("elbv2", "CreateTargetGroup", parsed)
    assert err.code == "ValidationError"
    assert err.message == (
        "2 validation errors detected: Value null at 'name' failed to satisfy constraint: Member must not be null; "
        "Value 'pod' at 'targetType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [instance, ip, lambda, alb]"
    )


# ----------------------------------------------------------------------------- query protocol: render


def parse_response(operation: OperationModel, xml: bytes, status: int = 200) -> dict[str, Any]:
    parser = create_parser("query")
    parsed: dict[str, Any] = parser.parse(
        {"body": xml, "headers": {}, "status_code": status}, operation.output_shape
    )
    return parsed


def without_metadata(parsed: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parsed.items() if k != "ResponseMetadata"}


def test_describe_target_groups_round_trips_through_botocores_parser() -> None:
    operation = op("elbv2", "DescribeTargetGroups")
    result = {
        "TargetGroups": [
            {
                "TargetGroupArn": "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/web/0123456789abcdef",
                "TargetGroupName": "web <&> \"tier\" 'one'",
                "Protocol": "HTTP",
                "Port": 80,
                "VpcId": "vpc-1",
                "HealthCheckProtocol": "HTTP",
                "HealthCheckPort": "traffic-port",
                "HealthCheckEnabled": True,
                "HealthCheckIntervalSeconds": 30,
                "HealthCheckTimeoutSeconds": 5,
                "HealthyThresholdCount": 5,
                "UnhealthyThresholdCount": 2,
                "HealthCheckPath": "/health?x=1&y=2",
                "Matcher": {"HttpCode": "200-299"},
                "LoadBalancerArns": ["arn:lb1", "arn:lb2"],
                "TargetType": "instance",
                "ProtocolVersion": "HTTP1",
                "IpAddressType": "ipv4",
            },
            {"TargetGroupArn": "arn:tg2", "LoadBalancerArns": [], "HealthCheckEnabled": False},
        ],
        "NextMarker": "line1\nline2\r\n",
    }
    xml = shapes.render_query_response(operation, result, "c534f810-f389-11e5-9192-3fff33344cfa")
    assert xml.startswith(
        b'<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
        b"<DescribeTargetGroupsResult>"
    )
    parsed = parse_response(operation, xml)
    assert without_metadata(parsed) == result
    assert parsed["ResponseMetadata"]["RequestId"] == "c534f810-f389-11e5-9192-3fff33344cfa"


class TargetHealthState(enum.Enum):
    INITIAL = "initial"
    HEALTHY = "healthy"


def test_describe_target_health_accepts_enum_members() -> None:
    operation = op("elbv2", "DescribeTargetHealth")
    result = {
        "TargetHealthDescriptions": [
            {
                "Target": {"Id": "i-0abc", "Port": 32768},
                "HealthCheckPort": "32768",
                "TargetHealth": {
                    "State": TargetHealthState.INITIAL,
                    "Reason": "Elb.InitialHealthChecking",
                    "Description": "Initial health checks in progress",
                },
            },
            {"Target": {"Id": "i-0abc", "Port": 32769}, "TargetHealth": {"State": TargetHealthState.HEALTHY}},
        ]
    }
    parsed = without_metadata(parse_response(operation, shapes.render_query_response(operation, result, "r")))
    descriptions = parsed["TargetHealthDescriptions"]
    assert descriptions[0]["Target"] == {"Id": "i-0abc", "Port": 32768}
    assert descriptions[0]["TargetHealth"] == {
        "State": "initial",
        "Reason": "Elb.InitialHealthChecking",
        "Description": "Initial health checks in progress",
    }
    assert descriptions[1]["TargetHealth"] == {"State": "healthy"}


def test_create_load_balancer_timestamps_and_nested_lists() -> None:
    operation = op("elbv2", "CreateLoadBalancer")
    created = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    result = {
        "LoadBalancers": [
            {
                "LoadBalancerArn": "arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/web/1",
                "DNSName": "web-1.portside.local",
                "CanonicalHostedZoneId": "Z1",
                "CreatedTime": created,
                "LoadBalancerName": "web",
                "Scheme": "internal",
                "VpcId": "vpc-1",
                "State": {"Code": "provisioning"},
                "Type": "application",
                "AvailabilityZones": [
                    {
                        "ZoneName": "local-1a",
                        "SubnetId": "subnet-1",
                        "LoadBalancerAddresses": [{"IpAddress": "10.0.0.5"}],
                    }
                ],
                "SecurityGroups": ["sg-1"],
                "IpAddressType": "ipv4",
            }
        ]
    }
    xml = shapes.render_query_response(operation, result, "r")
    assert b"<CreatedTime>2026-01-02T03:04:05.678Z</CreatedTime>" in xml
    parsed = without_metadata(parse_response(operation, xml))
    assert parsed == result
    assert parsed["LoadBalancers"][0]["CreatedTime"] == created


def test_empty_results() -> None:
    operation = op("elbv2", "RegisterTargets")
    xml = shapes.render_query_response(operation, {}, "r-9")
    assert xml == (
        b'<RegisterTargetsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
        b"<RegisterTargetsResult/><ResponseMetadata><RequestId>r-9</RequestId></ResponseMetadata>"
        b"</RegisterTargetsResponse>"
    )
    assert parse_response(operation, xml)["ResponseMetadata"]["RequestId"] == "r-9"


def test_render_rejects_caller_bugs() -> None:
    operation = op("elbv2", "DescribeTargetGroups")
    with pytest.raises(ValueError, match="no member 'TargetGroupArns'"):
        shapes.render_query_response(operation, {"TargetGroups": [{"TargetGroupArns": "x"}]}, "r")
    with pytest.raises(TypeError, match="expected int"):
        shapes.render_query_response(operation, {"TargetGroups": [{"Port": "80"}]}, "r")
    with pytest.raises(TypeError, match="expected bool"):
        shapes.render_query_response(operation, {"TargetGroups": [{"HealthCheckEnabled": "true"}]}, "r")


@pytest.mark.parametrize(("sender", "kind"), [(True, "Sender"), (False, "Receiver")])
def test_errors_parse_to_code_and_message(sender: bool, kind: str) -> None:
    operation = op("elbv2", "DescribeTargetGroups")
    xml = shapes.render_query_error(
        "TargetGroupNotFound", "One or more target groups not found: 'a<b>&c'", "req-7", sender=sender
    )
    assert xml.startswith(
        b'<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
    )
    parsed = parse_response(operation, xml, status=400 if sender else 500)
    assert parsed["Error"] == {
        "Type": kind,
        "Code": "TargetGroupNotFound",
        "Message": "One or more target groups not found: 'a<b>&c'",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req-7"


# ----------------------------------------------------------------------------- boto3 end to end


class _Elbv2(http.server.BaseHTTPRequestHandler):
    """A toy ELBv2 endpoint built from this module alone."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        form = dict(parse_qsl(body, keep_blank_values=True))
        operation = shapes.operation_model("elbv2", form.get("Action", ""))
        assert operation is not None
        try:
            params = shapes.parse_query_params(operation, form)
            shapes.validate_input(operation, params)
        except (SerializationError, InvalidParameterException) as err:
            self._answer(400, shapes.render_query_error(err.code, err.message, "req-err"))
            return
        result = {
            "TargetHealthDescriptions": [
                {
                    "Target": target,
                    "HealthCheckPort": str(target.get("Port", 80)),
                    "TargetHealth": {"State": "initial", "Reason": "Elb.InitialHealthChecking"},
                }
                for target in params.get("Targets", [])
            ]
        }
        self._answer(200, shapes.render_query_response(operation, result, "req-ok"))

    def _answer(self, status: int, xml: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(xml)))
        self.end_headers()
        self.wfile.write(xml)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def elbv2_endpoint() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Elbv2)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_boto3_client_against_shapes_endpoint(elbv2_endpoint: str) -> None:
    client = boto3.client(
        "elbv2",
        endpoint_url=elbv2_endpoint,
        region_name="us-west-2",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
        # Let invalid values reach the server, as they would from another SDK.
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )
    response = client.describe_target_health(
        TargetGroupArn="arn:tg", Targets=[{"Id": "i-0abc", "Port": 32768}, {"Id": "i-0abc", "Port": 32769}]
    )
    assert [d["Target"] for d in response["TargetHealthDescriptions"]] == [
        {"Id": "i-0abc", "Port": 32768},
        {"Id": "i-0abc", "Port": 32769},
    ]
    assert response["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "initial"
    assert response["ResponseMetadata"]["RequestId"] == "req-ok"

    with pytest.raises(ClientError) as info:
        client.describe_target_health(TargetGroupArn="arn:tg", Targets=[{"Id": "i-0abc", "Port": 0}])
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert info.value.response["Error"]["Message"] == (
        "1 validation error detected: Value '0' at 'targets.1.member.port' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )
