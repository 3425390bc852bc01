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
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.support.bounded_load import Load
from tests.support.server import PortsideProcess, free_port
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
            "TargetValue": 40.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        },
    )
    names = sorted(a["AlarmName"] for a in put["Alarms"])
    prefix = f"TargetTracking-{resource}-Alarm"
    listed = cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in listed) == names
    aas.put_scaling_policy(  # an update (target 40 -> 50) redefines the same two alarms
        PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        },
    )
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


def test_request_count_per_target_alarms_scale_a_service_out_under_load_and_back_in(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    """The issue's test: an alarm on AWS/ApplicationELB RequestCountPerTarget fires a step policy
    while the listener carries bounded load (scale-out, and again while it stays in ALARM), and a
    low alarm fires a scale-in policy once the load stops."""
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1", "--scaling-period", "1",
                             "--stop-timeout", "3")
    server.start()
    load = None
    try:
        ecs, aas, cw = server.client(), server.client("application-autoscaling"), server.client("cloudwatch")
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        lb = elb.create_load_balancer(Name="alarmed", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name="alarmed", Protocol="HTTP", Port=80, VpcId="v", TargetType="instance", HealthCheckIntervalSeconds=2,
            HealthCheckTimeoutSeconds=1, HealthCheckPath="/cgi-bin/whoami",
        )["TargetGroups"][0]
        elb.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "2"}]
        )
        port = free_port()
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        td = ecs.register_task_definition(
            family="alarmed", containerDefinitions=[{"name": "web", "image": busybox_image, "memory": 32, "stopTimeout": 3,
                                                      "portMappings": [{"containerPort": 80}]}],
        )["taskDefinition"]
        ecs.create_service(serviceName="alarmed", taskDefinition=td["taskDefinitionArn"], desiredCount=1,
                           loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}])
        ecs.get_waiter("services_stable").wait(services=["alarmed"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        resource = "service/default/alarmed"
        aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
                                     MinCapacity=1, MaxCapacity=3)

        def step_policy(name: str, adjustment: int) -> str:
            bound = {"MetricIntervalLowerBound": 0} if adjustment > 0 else {"MetricIntervalUpperBound": 0}
            return aas.put_scaling_policy(
                PolicyName=name, ServiceNamespace="ecs", ResourceId=resource, ScalableDimension=DIMENSION,
                PolicyType="StepScaling",
                StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "Cooldown": 3,
                                                "StepAdjustments": [{**bound, "ScalingAdjustment": adjustment}]},
            )["PolicyARN"]

        out_arn, in_arn = step_policy("requests-out", 1), step_policy("requests-in", -1)
        dimensions = [{"Name": "LoadBalancer", "Value": lb["LoadBalancerArn"].split(":loadbalancer/")[1]},
                      {"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":")[-1]}]
        common = {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCountPerTarget", "Dimensions": dimensions,
                      "Statistic": "Sum", "Period": 10, "EvaluationPeriods": 1}
        # 25 requests/s: ~250 per target per 10 s on one target, ~125 on two, ~83 on three
        cw.put_metric_alarm(AlarmName="alarmed-high", Threshold=100.0, ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=[out_arn], **common)
        cw.put_metric_alarm(AlarmName="alarmed-low", Threshold=5.0, ComparisonOperator="LessThanThreshold",
                            AlarmActions=[in_arn], **common)

        load = Load(f"http://127.0.0.1:{port}/cgi-bin/whoami", rate=25, deadline_s=240)
        load.thread.start()
        eventually(lambda: desired(server, "alarmed") == 3, timeout=150, interval=1, what="scale-out to 3")
        ecs.get_waiter("services_stable").wait(services=["alarmed"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        load.stop.set()
        load.thread.join()
        eventually(lambda: desired(server, "alarmed") == 1, timeout=150, interval=1, what="scale-in to 1")
        ecs.get_waiter("services_stable").wait(services=["alarmed"], WaiterConfig={"Delay": 1, "MaxAttempts": 90})

        assert load.ok > 20 and load.failed == 0, (load.ok, load.failed)
        activities = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]
        causes = [a["Cause"] for a in activities if a["StatusCode"] == "Successful"]
        outs = [c for c in causes if c.startswith("monitor alarm alarmed-high in state ALARM triggered policy requests-out")]
        ins = [c for c in causes if c.startswith("monitor alarm alarmed-low in state ALARM triggered policy requests-in")]
        assert len(outs) >= 2 and len(ins) >= 2, causes  # +1 steps: 1 -> 2 -> 3, and -1 steps: 3 -> 2 -> 1
        for alarm, arn in (("alarmed-high", out_arn), ("alarmed-low", in_arn)):
            history = cw.describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")["AlarmHistoryItems"]
            assert f"Successfully executed action {arn}" in [h["HistorySummary"] for h in history]
        high = cw.describe_alarms(AlarmNames=["alarmed-high"])["MetricAlarms"][0]
        assert high["StateValue"] == "OK"
    finally:
        if load is not None:
            load.stop.set()
        server.stop()
        remove_server_containers(docker_client, server)
