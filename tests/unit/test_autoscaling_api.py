"""Application Auto Scaling through the real endpoint, driven by a real boto3
``application-autoscaling`` client (and ``ecs``/``elbv2`` clients for the resources it scales).

The aiohttp app runs on 127.0.0.1:0 in a background event loop thread over a real SQLite store,
with portside's own proxy runtime as the ELBv2 data plane and a container instance registered through
the agent protocol's operation, with no agent behind it (no service controller runs, so no container
is needed). The scaler loop's
side (``apply_decision``, ``core_policies``) is called on the server's loop thread, as the loop
will call it, with a clock the test moves.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from portside.api import autoscaling as api_autoscaling
from portside.api import shapes
from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.control import autoscaling, scaling_policies
from tests.support.instances import register_instance
from portside.control.elbv2 import config as elb_config
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core import autoscale as core
from portside.proxy.runtime import ProxyRuntime

REGION = "us-east-1"
ACCOUNT = "000000000000"
DIMENSION = "ecs:service:DesiredCount"
WEB = "service/default/web"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Env:
    """One portside API on 127.0.0.1:<free port>, and boto3 clients for it."""

    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = Clock()
        cfg = ServerConfig(state_dir=state_dir, api_port=0, extra={"cluster": "default"})
        self.store = Store(state_dir / "portside.db")
        self.plane = ControlPlane(
            cfg, self.store, f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/default/x", clock=self.clock
        )
        register_instance(self.plane)
        self.runtime = self.call(lambda: ProxyRuntime(self.store))
        self.call(lambda: elb_config.restore(self.plane, self.runtime))
        self.api = ApiServer(self.plane, None)
        self.run(self.api.start("127.0.0.1", 0))
        assert self.api._runner is not None
        self.endpoint = f"http://127.0.0.1:{self.api._runner.addresses[0][1]}"
        self.aas = self.client("application-autoscaling")
        self.raw = self.client("application-autoscaling", parameter_validation=False)
        self.ecs = self.client("ecs")
        self.elb = self.client("elbv2")

    def client(self, service: str, region: str = REGION, parameter_validation: bool = True) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id="x", aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, parameter_validation=parameter_validation),
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread (where the store lives)."""

        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.run(self.api.close())
        self.run(self.runtime.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()

    # -- fixtures through the ECS and ELBv2 APIs

    def service(self, name: str = "web", desired: int = 2) -> dict[str, Any]:
        self.ecs.register_task_definition(
            family=name, containerDefinitions=[{"name": "app", "image": "busybox", "memory": 64, "essential": True}]
        )
        return self.ecs.create_service(cluster="default", serviceName=name, taskDefinition=name, desiredCount=desired)["service"]

    def desired_count(self, name: str = "web") -> int:
        return int(self.ecs.describe_services(cluster="default", services=[name])["services"][0]["desiredCount"])

    def register(self, resource_id: str = WEB, **extra: Any) -> dict[str, Any]:
        params = {"MinCapacity": 1, "MaxCapacity": 10, **extra}
        return self.aas.register_scalable_target(
            ServiceNamespace="ecs", ResourceId=resource_id, ScalableDimension=DIMENSION, **params
        )

    def put_cpu_policy(self, name: str = "cpu50", target: float = 50.0, **config: Any) -> dict[str, Any]:
        return self.aas.put_scaling_policy(
            PolicyName=name, ServiceNamespace="ecs", ResourceId=WEB, ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": target,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
                **config,
            },
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def expect_error(code: str, fn: Callable[..., Any], **params: Any) -> str:
    with pytest.raises(ClientError) as exc:
        fn(**params)
    error = exc.value.response["Error"]
    assert error["Code"] == code, exc.value.response
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(error["Message"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def target_params(resource_id: str = WEB) -> dict[str, str]:
    return {"ServiceNamespace": "ecs", "ResourceId": resource_id, "ScalableDimension": DIMENSION}


def series(end: float, *values: float) -> list[tuple[float, float]]:
    return [(end - 60 * (len(values) - 1 - i), v) for i, v in enumerate(values)]


# ----------------------------------------------------------------------------- scalable targets


def test_register_describe_update_scalable_target(env: Env) -> None:
    env.service(desired=2)
    arn = env.register(MinCapacity=1, MaxCapacity=4)["ScalableTargetARN"]
    assert re.fullmatch(rf"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/[0-9a-f]{{36}}", arn)
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert target["ResourceId"] == WEB and target["ScalableDimension"] == DIMENSION and target["ServiceNamespace"] == "ecs"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert target["ScalableTargetARN"] == arn
    assert target["RoleARN"].endswith("/AWSServiceRoleForApplicationAutoScaling_ECSService")
    assert target["SuspendedState"] == {
        "DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False, "ScheduledScalingSuspended": False,
    }
    assert target["CreationTime"].timestamp() == env.clock.now
    assert not any(k.startswith("_") for k in target)

    # an update changes only what it names, keeps the ARN
    again = env.aas.register_scalable_target(
        **target_params(), MaxCapacity=6, SuspendedState={"DynamicScalingInSuspended": True}
    )
    assert again["ScalableTargetARN"] == arn
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[WEB])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 6)
    assert target["SuspendedState"]["DynamicScalingInSuspended"] is True
    assert target["SuspendedState"]["DynamicScalingOutSuspended"] is False
    assert env.aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=["service/default/other"])["ScalableTargets"] == []
    assert env.aas.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"] == []
    # another region sees none of it
    assert env.client("application-autoscaling", "eu-west-1").describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_register_moves_the_desired_count_into_range_and_records_it(env: Env) -> None:
    env.service(desired=1)
    env.register(MinCapacity=3, MaxCapacity=5)
    assert env.desired_count() == 3
    [activity] = env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]
    assert activity["Cause"] == "minimum capacity was set to 3"
    assert activity["Description"] == "Setting desired count to 3."
    assert activity["StatusCode"] == "Successful"
    assert activity["StatusMessage"] == "Successfully set desired count to 3. Change successfully fulfilled by ecs."
    assert re.fullmatch(UUID, activity["ActivityId"])
    env.clock.now += 10
    env.register(MaxCapacity=4, MinCapacity=0)  # 3 is inside: nothing to do
    env.aas.register_scalable_target(**target_params(), MaxCapacity=2)
    assert env.desired_count() == 2
    latest = env.aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=WEB)["ScalingActivities"][0]
    assert latest["Cause"] == "maximum capacity was set to 2"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ResourceId": "service/default/nope"}, "ECS service doesn't exist: service/default/nope"),
        ({"ResourceId": "service/missing/web"}, "ECS service doesn't exist: service/missing/web"),
        ({"ServiceNamespace": "dynamodb", "ResourceId": "table/t", "ScalableDimension": "dynamodb:table:ReadCapacityUnits"},
         "Unsupported service namespace, resource type or scalable dimension"),
        ({"ScalableDimension": "ec2:spot-fleet-request:TargetCapacity"}, "Unsupported service namespace, resource type or scalable dimension"),
        ({"ResourceId": "cluster/web"}, "Unsupported service namespace, resource type or scalable dimension"),
        ({"ResourceId": "service/web"}, "Resource ID 'service/web' is not valid for an ECS service"),
        ({"MinCapacity": None}, "MinCapacity and MaxCapacity are required when registering a new scalable target."),
        ({"MaxCapacity": None}, "MinCapacity and MaxCapacity are required when registering a new scalable target."),
        ({"MinCapacity": 5, "MaxCapacity": 2}, "Minimum capacity cannot be greater than maximum capacity"),
        ({"MinCapacity": -1}, "MinCapacity must be greater than or equal to 0"),
        ({"ScalableDimension": "bogus"}, "1 validation error detected: Value 'bogus' at 'scalableDimension' failed to satisfy constraint: Member must satisfy enum value set"),
    ],
)
def test_register_refusals(env: Env, params: dict[str, Any], message: str) -> None:
    env.service()
    request = {**target_params(), "MinCapacity": 1, "MaxCapacity": 4, **params}
    request = {k: v for k, v in request.items() if v is not None}
    assert message in expect_error("ValidationException", env.raw.register_scalable_target, **request)
    assert env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_register_update_refuses_min_above_existing_max(env: Env) -> None:
    env.service()
    env.register(MinCapacity=1, MaxCapacity=4)
    expect_error("ValidationException", env.aas.register_scalable_target, **target_params(), MinCapacity=5)
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)


def test_describe_scalable_targets_pages(env: Env) -> None:
    for name in ("a", "b", "c"):
        env.service(name, desired=1)
        env.register(f"service/default/{name}")
    first = env.aas.describe_scalable_targets(ServiceNamespace="ecs", MaxResults=2)
    assert [t["ResourceId"] for t in first["ScalableTargets"]] == ["service/default/a", "service/default/b"]
    second = env.aas.describe_scalable_targets(ServiceNamespace="ecs", MaxResults=2, NextToken=first["NextToken"])
    assert [t["ResourceId"] for t in second["ScalableTargets"]] == ["service/default/c"] and "NextToken" not in second
    paginator = env.aas.get_paginator("describe_scalable_targets")
    pages = list(paginator.paginate(ServiceNamespace="ecs", PaginationConfig={"PageSize": 1}))
    assert [p["ScalableTargets"][0]["ResourceId"] for p in pages] == [f"service/default/{n}" for n in "abc"]
    message = expect_error("ValidationException", env.aas.describe_scalable_targets, ServiceNamespace="ecs", MaxResults=51)
    assert message == (
        "1 validation error detected: Value '51' at 'maxResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 50"
    )
    expect_error("ValidationException", env.aas.describe_scalable_targets, ServiceNamespace="ecs", MaxResults=0)
    expect_error("InvalidNextTokenException", env.aas.describe_scalable_targets, ServiceNamespace="ecs", NextToken="garbage")


def test_deregister_deletes_policies_and_refuses_unknown_targets(env: Env) -> None:
    env.service()
    env.register()
    env.put_cpu_policy()
    env.aas.deregister_scalable_target(**target_params())
    assert env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    assert env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []
    message = expect_error("ObjectNotFoundException", env.aas.deregister_scalable_target, **target_params())
    assert message == (
        "No scalable target found for service namespace: ecs, resource ID: service/default/web, "
        "scalable dimension: ecs:service:DesiredCount"
    )


# ----------------------------------------------------------------------------- scaling policies


def test_target_tracking_policy_alarms_describe_update_delete(env: Env) -> None:
    env.service()
    env.register()
    out = env.put_cpu_policy()
    assert re.fullmatch(
        rf"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:{UUID}:resource/ecs/service/default/web:policyName/cpu50",
        out["PolicyARN"],
    )
    high, low = out["Alarms"]
    assert re.fullmatch(rf"TargetTracking-service/default/web-AlarmHigh-{UUID}", high["AlarmName"])
    assert re.fullmatch(rf"TargetTracking-service/default/web-AlarmLow-{UUID}", low["AlarmName"])
    assert high["AlarmARN"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{high['AlarmName']}"
    [policy] = env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert policy["PolicyName"] == "cpu50" and policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["PolicyARN"] == out["PolicyARN"] and policy["Alarms"] == out["Alarms"]
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
    }
    assert (policy["ResourceId"], policy["ScalableDimension"], policy["ServiceNamespace"]) == (WEB, DIMENSION, "ecs")

    # an update keeps the ARN and the alarms
    again = env.put_cpu_policy(target=60.0, ScaleInCooldown=120, ScaleOutCooldown=30, DisableScaleIn=True)
    assert again == {**out, "ResponseMetadata": again["ResponseMetadata"]}
    [policy] = env.aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=WEB, PolicyNames=["cpu50"])["ScalingPolicies"]
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (config["TargetValue"], config["ScaleInCooldown"], config["ScaleOutCooldown"], config["DisableScaleIn"]) == (60.0, 120, 30, True)

    memory = env.aas.put_scaling_policy(
        PolicyName="mem", **target_params(), PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageMemoryUtilization"},
        },
    )
    assert len(memory["Alarms"]) == 2
    names = [p["PolicyName"] for p in env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]]
    assert names == ["cpu50", "mem"]
    assert env.aas.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=["nope"])["ScalingPolicies"] == []

    env.aas.delete_scaling_policy(PolicyName="cpu50", **target_params())
    assert [p["PolicyName"] for p in env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]] == ["mem"]
    message = expect_error("ObjectNotFoundException", env.aas.delete_scaling_policy, PolicyName="cpu50", **target_params())
    assert message == (
        "No scaling policy found for service namespace: ecs, resource ID: service/default/web, "
        "scalable dimension: ecs:service:DesiredCount, policy name: cpu50"
    )


def test_policies_need_a_registered_target(env: Env) -> None:
    env.service()
    message = expect_error("ObjectNotFoundException", env.put_cpu_policy)
    assert message == (
        "No scalable target registered for service namespace: ecs, resource ID: service/default/web, "
        "scalable dimension: ecs:service:DesiredCount"
    )


def _tt(metric: str = "ECSServiceAverageCPUUtilization", target: float = 50, **spec: Any) -> dict[str, Any]:
    return {"TargetValue": target, "PredefinedMetricSpecification": {"PredefinedMetricType": metric, **spec}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"PolicyType": None}, "PolicyType is required when creating a scaling policy."),
        ({"PolicyType": "PredictiveScaling", "TargetTrackingScalingPolicyConfiguration": None,
          "PredictiveScalingPolicyConfiguration": {"MetricSpecifications": [{"TargetValue": 50}]}},
         "portside does not support PredictiveScaling policies"),
        ({"TargetTrackingScalingPolicyConfiguration": None}, "TargetTrackingScalingPolicyConfiguration is required"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt("DynamoDBReadCapacityUtilization")},
         "Predefined metric type DynamoDBReadCapacityUtilization is not supported"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt("ALBRequestCountPerTarget")},
         "Resource label should be specified for predefined metric type ALBRequestCountPerTarget"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt(ResourceLabel="app/x/0123456789abcdef/targetgroup/y/0123456789abcdef")},
         "A resource label can only be specified for predefined metric type ALBRequestCountPerTarget"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt("ALBRequestCountPerTarget", ResourceLabel="app/x/y")},
         "Resource label 'app/x/y' is not valid"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt(
            "ALBRequestCountPerTarget", ResourceLabel="app/x/0123456789abcdef/targetgroup/y/0123456789abcdef")},
         "names load balancer arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/x/0123456789abcdef, which does not exist"),
        ({"TargetTrackingScalingPolicyConfiguration": _tt(target=0)}, "TargetValue must be greater than 0"),
        ({"TargetTrackingScalingPolicyConfiguration": {**_tt(), "ScaleInCooldown": -1}}, "ScaleInCooldown must be greater than or equal to 0"),
        ({"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 50, "CustomizedMetricSpecification": {"MetricName": "m", "Namespace": "n", "Statistic": "Average"}}},
         "portside does not support CustomizedMetricSpecification"),
        ({"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 50}}, "A PredefinedMetricSpecification is required"),
        ({"StepScalingPolicyConfiguration": {"AdjustmentType": "ChangeInCapacity"}},
         "StepScalingPolicyConfiguration cannot be specified for a TargetTrackingScaling policy."),
        ({"PolicyName": ""}, "Value '' at 'policyName' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        ({"ServiceNamespace": "dynamodb"}, "Unsupported service namespace, resource type or scalable dimension"),
    ],
)
def test_target_tracking_refusals(env: Env, params: dict[str, Any], message: str) -> None:
    env.service()
    env.register()
    request: dict[str, Any] = {
        "PolicyName": "p", **target_params(), "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": _tt(), **params,
    }
    request = {k: v for k, v in request.items() if v is not None}
    assert message in expect_error("ValidationException", env.raw.put_scaling_policy, **request)
    assert env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []


def test_one_target_tracking_policy_per_metric(env: Env) -> None:
    env.service()
    env.register()
    env.put_cpu_policy("first")
    message = expect_error("ValidationException", env.put_cpu_policy, name="second")
    assert "Scaling policy first already tracks ECSServiceAverageCPUUtilization" in message
    env.put_cpu_policy("first", target=70.0)  # updating the same policy is fine


def test_alb_request_count_policy_checks_the_resource_label(env: Env) -> None:
    env.service()
    env.register()
    lb = env.elb.create_load_balancer(Name="web-lb", Scheme="internal")["LoadBalancers"][0]
    tg = env.elb.create_target_group(Name="web-tg", Protocol="HTTP", Port=80, VpcId="vpc-1")["TargetGroups"][0]
    label = lb["LoadBalancerArn"].split(":loadbalancer/")[1] + "/" + tg["TargetGroupArn"].split(":")[-1]
    assert re.fullmatch(r"app/web-lb/[0-9a-f]{16}/targetgroup/web-tg/[0-9a-f]{16}", label)
    config = _tt("ALBRequestCountPerTarget", 100, ResourceLabel=label)

    def put() -> dict[str, Any]:
        return env.aas.put_scaling_policy(
            PolicyName="requests", **target_params(), PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=config,
        )

    message = expect_error("ValidationException", put)
    assert message == f"Target group {tg['TargetGroupArn']} is not associated with load balancer {lb['LoadBalancerArn']}."
    env.elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    assert len(put()["Alarms"]) == 2
    [policy] = scaling_policies_of(env)
    assert isinstance(policy, core.TargetTrackingPolicy)
    assert policy.metric == f"ALBRequestCountPerTarget/{label}" and policy.target_value == 100


def scaling_policies_of(env: Env, resource_id: str = WEB) -> list[core.Policy]:
    return env.call(lambda: scaling_policies.core_policies(env.plane, REGION, resource_id))  # type: ignore[no-any-return]


STEPS_OUT = [
    {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 0},
    {"MetricIntervalLowerBound": 10, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 10},
    {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 30},
]


def test_step_scaling_policy_and_its_alarm(env: Env) -> None:
    env.service(desired=10)
    env.register(MinCapacity=1, MaxCapacity=20)
    out = env.aas.put_scaling_policy(
        PolicyName="step-out", **target_params(), PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "PercentChangeInCapacity", "StepAdjustments": STEPS_OUT, "MinAdjustmentMagnitude": 1,
            "Cooldown": 60, "MetricAggregationType": "Maximum",
        },
    )
    assert out["Alarms"] == []
    [policy] = env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert policy["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 10.0, "ScalingAdjustment": 0},
        {"MetricIntervalLowerBound": 10.0, "MetricIntervalUpperBound": 20.0, "ScalingAdjustment": 10},
        {"MetricIntervalLowerBound": 20.0, "ScalingAdjustment": 30},
    ]
    [step] = scaling_policies_of(env)
    assert isinstance(step, core.StepScalingPolicy) and step.alarm is None
    assert step.adjustment_type is core.AdjustmentType.PERCENT_CHANGE_IN_CAPACITY
    assert step.cooldown_s == 60 and step.aggregation is core.MetricAggregation.MAXIMUM

    alarm = core.StepAlarm("web-cpu-high", "cpu", 50, core.ComparisonOperator.GREATER_THAN_OR_EQUAL)
    env.call(lambda: scaling_policies.set_step_alarm(env.plane, REGION, out["PolicyARN"], alarm))
    [policy] = env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    assert policy["Alarms"] == [{"AlarmName": "web-cpu-high", "AlarmARN": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-cpu-high"}]
    [step] = scaling_policies_of(env)
    assert step.alarm == alarm
    # the user guide's example: 10 tasks, metric at 60 -> +10 % -> 11
    now = env.clock.now
    decision = core.decide(scaling_policies_of(env), 10, 1, 20, {"cpu": series(now, 60)}, None, None, now)
    assert decision is not None and decision.desired == 11
    assert decision.reason == "monitor alarm web-cpu-high in state ALARM triggered policy step-out"

    # an update that names only the adjustments keeps the rest (and the alarm)
    env.aas.put_scaling_policy(
        PolicyName="step-out", **target_params(),
        StepScalingPolicyConfiguration={"StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 50}]},
    )
    [step] = scaling_policies_of(env)
    assert step.cooldown_s == 60 and step.alarm == alarm and step.step_adjustments == (core.StepAdjustment(50, 0, None),)
    with pytest.raises(autoscaling.AutoScalingError) as missing:
        env.call(lambda: scaling_policies.set_step_alarm(env.plane, REGION, out["PolicyARN"] + "x", alarm))
    assert missing.value.code == "ObjectNotFoundException"


def _step(adjustment_type: str = "ChangeInCapacity", steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"AdjustmentType": adjustment_type, "StepAdjustments": steps if steps is not None else [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}], **extra}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "StepScalingPolicyConfiguration is required for a StepScaling policy."),
        ({"StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]},
         "AdjustmentType is required if you are adding a new step scaling policy configuration."),
        (_step(steps=[]), "StepAdjustments must contain at least one step adjustment."),
        (_step(steps=[{"ScalingAdjustment": 1}]), "The upper and lower bound can't be null in the same step adjustment."),
        (_step(steps=[{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}, {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2}]),
         "Only one step adjustment can have a null upper bound."),
        (_step(steps=[{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}, {"MetricIntervalUpperBound": -5, "ScalingAdjustment": -2}]),
         "Only one step adjustment can have a null lower bound."),
        (_step(steps=[{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
                      {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 2}]),
         "The ranges of your step adjustments can't overlap or have a gap."),
        (_step(steps=[{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
                      {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 2}]),
         "The ranges of your step adjustments can't overlap or have a gap."),
        (_step(steps=[{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1}]),
         "If one step adjustment has a positive upper bound, there must be a step adjustment with a null upper bound."),
        (_step(steps=[{"MetricIntervalLowerBound": -10, "MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}]),
         "If one step adjustment has a negative lower bound, there must be a step adjustment with a null lower bound."),
        (_step(steps=[{"MetricIntervalLowerBound": 10, "MetricIntervalUpperBound": 5, "ScalingAdjustment": 1}]),
         "The lower bound (10.0) of a step adjustment must be less than its upper bound (5.0)."),
        (_step("ExactCapacity", steps=[{"MetricIntervalLowerBound": 0, "ScalingAdjustment": -1}]),
         "ScalingAdjustment must be 0 or more when AdjustmentType is ExactCapacity."),
        (_step(MinAdjustmentMagnitude=2), "MinAdjustmentMagnitude is only supported with AdjustmentType PercentChangeInCapacity."),
        (_step("PercentChangeInCapacity", MinAdjustmentMagnitude=0), "MinAdjustmentMagnitude must be at least 1"),
        (_step(Cooldown=-5), "Cooldown must be greater than or equal to 0"),
        (_step(AdjustmentType="Bogus"), "Member must satisfy enum value set: [ChangeInCapacity, PercentChangeInCapacity, ExactCapacity]"),
    ],
)
def test_step_scaling_refusals(env: Env, config: dict[str, Any] | None, message: str) -> None:
    env.service()
    env.register()
    request: dict[str, Any] = {"PolicyName": "p", **target_params(), "PolicyType": "StepScaling"}
    if config is not None:
        request["StepScalingPolicyConfiguration"] = config
    assert message in expect_error("ValidationException", env.raw.put_scaling_policy, **request)
    assert env.aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"] == []


def test_describe_scaling_policies_pages_by_ten(env: Env) -> None:
    env.service()
    env.register()
    for i in range(12):
        env.aas.put_scaling_policy(PolicyName=f"p{i:02}", **target_params(), PolicyType="StepScaling", StepScalingPolicyConfiguration=_step())
    first = env.aas.describe_scaling_policies(ServiceNamespace="ecs")
    assert len(first["ScalingPolicies"]) == 10
    rest = env.aas.describe_scaling_policies(ServiceNamespace="ecs", NextToken=first["NextToken"])
    assert [p["PolicyName"] for p in rest["ScalingPolicies"]] == ["p10", "p11"]
    expect_error("ValidationException", env.aas.describe_scaling_policies, ServiceNamespace="ecs", MaxResults=11)
    expect_error("InvalidNextTokenException", env.aas.describe_scaling_policies, ServiceNamespace="ecs", NextToken="!!")


# ----------------------------------------------------------------------------- the scaler loop's side


def test_scaler_side_decide_apply_and_activities(env: Env) -> None:
    """What the loop will do: read targets and policies, decide, apply; activities as AWS shows them."""
    env.service(desired=2)
    env.register(MinCapacity=1, MaxCapacity=5)
    high_alarm = env.put_cpu_policy()["Alarms"][0]["AlarmName"]
    [target] = env.call(lambda: autoscaling.scalable_targets(env.plane))
    assert (target.region, target.cluster, target.service, target.min_capacity, target.max_capacity) == (REGION, "default", "web", 1, 5)
    assert target.last_scale_out_at is None and target.suspension == core.Suspension()
    service = env.call(lambda: env.plane.store.list_services(REGION, "default")[0])
    assert autoscaling.deployment_in_progress(service)  # the first deployment has not completed

    now = env.clock.now
    policies = scaling_policies_of(env)
    decision = core.decide(
        policies, 2, target.min_capacity, target.max_capacity, {core.ECS_CPU_UTILIZATION: series(now, 100, 100, 100)},
        target.last_scale_out_at, target.last_scale_in_at, now, True, desired_capacity=2,
    )
    assert decision is not None and decision.desired == 4
    activity = env.call(lambda: autoscaling.apply_decision(env.plane, REGION, WEB, decision, now))
    assert env.desired_count() == 4
    expected_cause = f"monitor alarm {high_alarm} in state ALARM triggered policy cpu50"
    assert activity["Cause"] == expected_cause and activity["StatusCode"] == "Successful"
    [listed] = env.aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=WEB, ScalableDimension=DIMENSION)["ScalingActivities"]
    assert listed["Cause"] == expected_cause
    assert listed["Description"] == "Setting desired count to 4."
    assert listed["StatusMessage"] == "Successfully set desired count to 4. Change successfully fulfilled by ecs."
    assert listed["StartTime"].timestamp() == now and listed["EndTime"].timestamp() == now
    [target] = env.call(lambda: autoscaling.scalable_targets(env.plane))
    assert target.last_scale_out_at == now and target.scale_out_base == 2

    # at the maximum the alarm is recorded once as a not-scaled activity, shown only on request
    env.clock.now += 400
    now = env.clock.now
    at_max = core.decide(policies, 5, 1, 5, {core.ECS_CPU_UTILIZATION: series(now, 200, 200, 200)}, None, None, now, desired_capacity=5)
    assert at_max is not None and at_max.not_scaled_reason is core.NotScaledReason.ALREADY_AT_MAX_CAPACITY
    for _ in range(3):
        env.call(lambda: autoscaling.apply_decision(env.plane, REGION, WEB, at_max, now))
    assert len(env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]) == 1
    every = env.aas.describe_scaling_activities(ServiceNamespace="ecs", IncludeNotScaledActivities=True)["ScalingActivities"]
    assert len(every) == 2
    assert every[0]["StatusCode"] == "Failed" and every[0]["NotScaledReasons"] == [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 5}]
    assert every[0]["Description"] == "Attempting to scale due to alarm triggered"
    assert env.desired_count() == 4
    page = env.aas.describe_scaling_activities(ServiceNamespace="ecs", IncludeNotScaledActivities=True, MaxResults=1)
    assert page["ScalingActivities"] == every[:1]
    rest = env.aas.describe_scaling_activities(ServiceNamespace="ecs", IncludeNotScaledActivities=True, NextToken=page["NextToken"])
    assert rest["ScalingActivities"] == every[1:]
    assert env.aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId="service/default/other")["ScalingActivities"] == []

    # a scale-in through the same path; the ECS service refusing shows as a Failed activity
    scale_in = core.Decision(3, core.alarm_cause("low", "cpu50"), "cpu50", core.Direction.IN, "low", 4)
    env.call(lambda: autoscaling.apply_decision(env.plane, REGION, WEB, scale_in, now + 1))
    assert env.desired_count() == 3
    [target] = env.call(lambda: autoscaling.scalable_targets(env.plane))
    assert target.last_scale_in_at == now + 1
    env.ecs.delete_service(cluster="default", service="web", force=True)
    env.call(lambda: autoscaling.apply_decision(env.plane, REGION, WEB, scale_in, now + 2))
    latest = env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"][0]
    assert latest["StatusCode"] == "Failed"
    assert latest["StatusMessage"] == "Failed to set desired count to 3. Reason: Service was not ACTIVE."
    [target] = env.call(lambda: autoscaling.scalable_targets(env.plane))
    assert target.last_scale_in_at == now + 1  # a failed activity starts no cooldown


def test_activities_are_kept_six_weeks(env: Env) -> None:
    env.service()
    env.register(MinCapacity=3)  # one activity: 2 -> 3
    assert len(env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]) == 1
    env.clock.now += autoscaling.ACTIVITY_RETENTION_S + 1
    assert env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"] == []


# ----------------------------------------------------------------------------- the edge


def test_unserved_actions_and_the_model() -> None:
    model = shapes.service_model("application-autoscaling")
    assert set(api_autoscaling.OPERATIONS) <= set(model.operation_names)
    codes = {shape.name for shape in model.error_shapes}
    for code in ("ValidationException", "ObjectNotFoundException", "InvalidNextTokenException"):
        assert code in codes


def test_unserved_action_is_unknown_operation(env: Env) -> None:
    env.service()
    env.register()
    message = expect_error(
        "UnknownOperationException", env.aas.get_predictive_scaling_forecast, ServiceNamespace="ecs", PolicyName="a",
        ResourceId=WEB, ScalableDimension=DIMENSION, StartTime=1_700_000_000, EndTime=1_700_003_600,
    )
    assert message == "Unknown operation GetPredictiveScalingForecast"
