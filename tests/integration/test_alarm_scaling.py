"""CloudWatch alarms driving Application Auto Scaling on a real server with real containers:
an alarm naming a step scaling policy in its AlarmActions scales the service while it is in ALARM;
target tracking policies own their two alarms. The server runs its alarm and scaling rounds every
second (``--scaling-period 1``); metrics come in through PutMetricData at one-second resolution."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

DIMENSION = "ecs:service:DesiredCount"


@pytest.fixture
def server(tmp_path: Path, docker_client: Any) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path / "state", "--scaling-period", "1", "--stop-timeout", "1")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


def make_service(server: PortsideProcess, image: str, name: str, desired: int) -> str:
    ecs = server.client()
    td = ecs.register_task_definition(
        family=name, containerDefinitions=[{"name": "app", "image": image, "memory": 16, "stopTimeout": 1,
                                            "command": ["sleep", "600"]}],
    )["taskDefinition"]
    ecs.create_service(serviceName=name, taskDefinition=td["taskDefinitionArn"], desiredCount=desired)
    resource = f"service/default/{name}"
    server.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION, MinCapacity=0, MaxCapacity=3,
    )
    return resource


def desired(server: PortsideProcess, name: str) -> int:
    return server.client().describe_services(services=[name])["services"][0]["desiredCount"]


def test_an_alarm_in_alarm_fires_its_step_policy_and_not_when_actions_are_disabled(
    server: PortsideProcess, busybox_image: str
) -> None:
    name = f"steps{uuid.uuid4().hex[:6]}"
    resource = make_service(server, busybox_image, name, 0)
    aas, cw = server.client("application-autoscaling"), server.client("cloudwatch")
    policy = aas.put_scaling_policy(
        PolicyName="queue-out", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ExactCapacity", "Cooldown": 0, "MetricAggregationType": "Maximum",
            "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 100, "ScalingAdjustment": 1},
                {"MetricIntervalLowerBound": 100, "ScalingAdjustment": 2},
            ],
        },
    )["PolicyARN"]
    alarm = f"{name}-backlog"
    cw.put_metric_alarm(
        AlarmName=alarm, Namespace="Portside/Queue", MetricName="Backlog", Dimensions=[{"Name": "Queue", "Value": name}],
        Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=10.0, ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[policy], ActionsEnabled=False,
    )
    shown = aas.describe_scaling_policies(ServiceNamespace="ecs", PolicyNames=["queue-out"], ResourceId=resource)
    assert shown["ScalingPolicies"][0]["Alarms"] == [
        {"AlarmName": alarm, "AlarmARN": f"arn:aws:cloudwatch:us-east-1:000000000000:alarm:{alarm}"}
    ]

    def feed_until_alarm(value: float) -> bool:
        cw.put_metric_data(Namespace="Portside/Queue", MetricData=[{
            "MetricName": "Backlog", "Dimensions": [{"Name": "Queue", "Value": name}], "Value": value, "StorageResolution": 1}])
        return cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "ALARM"

    # a backlog of 150 is 140 over the threshold: the second step (ExactCapacity 2) -- but actions are off
    eventually(lambda: feed_until_alarm(150.0), timeout=60, interval=1, what="the backlog alarm in ALARM")
    assert desired(server, name) == 0
    cw.enable_alarm_actions(AlarmNames=[alarm])
    eventually(lambda: feed_until_alarm(150.0) and desired(server, name) == 2, timeout=60, interval=1,
               what="the step policy scaling the service to 2")
    activities = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]
    assert any(a["Cause"] == f"monitor alarm {alarm} in state ALARM triggered policy queue-out" for a in activities)
    history = cw.describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")["AlarmHistoryItems"]
    assert history == []  # actions were disabled when it went into ALARM: no action item then, as on AWS


def test_target_tracking_policies_own_their_alarms(server: PortsideProcess, busybox_image: str) -> None:
    name = f"tt{uuid.uuid4().hex[:6]}"
    resource = make_service(server, busybox_image, name, 0)
    aas, cw = server.client("application-autoscaling"), server.client("cloudwatch")
    put = aas.put_scaling_policy(
        PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        },
    )
    names = sorted(a["AlarmName"] for a in put["Alarms"])
    prefix = f"TargetTracking-{resource}-Alarm"
    listed = cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in listed) == names
    high = next(a for a in listed if "-AlarmHigh-" in a["AlarmName"])
    low = next(a for a in listed if "-AlarmLow-" in a["AlarmName"])
    assert (high["Namespace"], high["MetricName"], high["Statistic"]) == ("AWS/ECS", "CPUUtilization", "Average")
    assert high["Dimensions"] == [{"Name": "ClusterName", "Value": "default"}, {"Name": "ServiceName", "Value": name}]
    assert (high["ComparisonOperator"], high["Threshold"], high["EvaluationPeriods"]) == ("GreaterThanThreshold", 50.0, 3)
    assert (low["ComparisonOperator"], low["Threshold"], low["EvaluationPeriods"]) == ("LessThanThreshold", 45.0, 15)
    assert high["AlarmActions"] == [put["PolicyARN"]]

    for refused in (lambda: cw.delete_alarms(AlarmNames=[high["AlarmName"]]),
                    lambda: cw.put_metric_alarm(AlarmName=high["AlarmName"], Namespace="X", MetricName="Y",
                                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                                ComparisonOperator="GreaterThanThreshold")):
        with pytest.raises(ClientError) as caught:
            refused()
        assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert "managed by the target tracking scaling policy" in caught.value.response["Error"]["Message"]
    assert len(cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]) == 2

    aas.delete_scaling_policy(PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION)
    assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []

    aas.put_scaling_policy(
        PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageMemoryUtilization"},
        },
    )
    assert {a["MetricName"] for a in cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]} == {"MemoryUtilization"}
    aas.deregister_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION)
    assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
