"""Reactive scaling end to end: load through the listener scales a service out, quiet scales it back."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from portside.control.store import Store
from tests.integration.conftest import remove_server_containers
from tests.support.bounded_load import Load
from tests.support.server import PortsideProcess, free_port

pytestmark = pytest.mark.docker

TIMEOUT_S = 120


def _wait(predicate: Any, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_request_count_scales_out_and_back_in(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1", "--scaling-period", "1", "--stop-timeout", "3")
    server.start()
    load = None
    try:
        ecs = server.client()
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        aas = server.client("application-autoscaling")
        lb = elb.create_load_balancer(Name="scale", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name="scale", Protocol="HTTP", Port=80, VpcId="v", TargetType="instance", HealthCheckIntervalSeconds=2,
            HealthCheckTimeoutSeconds=1, HealthCheckPath="/cgi-bin/whoami",
        )["TargetGroups"][0]
        elb.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "2"}]
        )
        port = free_port()
        elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )
        td = ecs.register_task_definition(
            family="scale",
            containerDefinitions=[{"name": "web", "image": busybox_image, "memory": 32, "stopTimeout": 3,
                                   "portMappings": [{"containerPort": 80}]}],
        )["taskDefinition"]
        ecs.create_service(
            serviceName="scale", taskDefinition=td["taskDefinitionArn"], desiredCount=1,
            loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}],
        )
        ecs.get_waiter("services_stable").wait(services=["scale"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        resource = "service/default/scale"
        aas.register_scalable_target(
            ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=1, MaxCapacity=3,
        )
        label = lb["LoadBalancerArn"].split(":loadbalancer/")[1] + "/" + tg["TargetGroupArn"].split(":")[-1]
        aas.put_scaling_policy(
            PolicyName="requests", ServiceNamespace="ecs", ResourceId=resource,
            ScalableDimension="ecs:service:DesiredCount", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 300.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label},
            },
        )
        load = Load(f"http://127.0.0.1:{port}/cgi-bin/whoami", rate=25, deadline_s=TIMEOUT_S)  # ~1500 req/target/min
        load.thread.start()
        _wait(lambda: ecs.describe_services(services=["scale"])["services"][0]["desiredCount"] == 3, "scale-out to 3")
        ecs.get_waiter("services_stable").wait(services=["scale"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        load.stop.set()
        load.thread.join()
        _wait(lambda: ecs.describe_services(services=["scale"])["services"][0]["desiredCount"] == 1, "scale-in to 1")
        ecs.get_waiter("services_stable").wait(services=["scale"], WaiterConfig={"Delay": 1, "MaxAttempts": 90})
        assert load.ok > 20 and load.failed == 0, (load.ok, load.failed)
        activities = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]
        successful = [a for a in activities if a["StatusCode"] == "Successful"]
        assert len(successful) >= 2
        assert any("triggered policy requests" in a["Cause"] for a in successful)
        with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as reply:
            families = {f.name: f for f in text_string_to_metric_families(reply.read().decode())}
        requests = sum(s.value for s in families["portside_lb_requests"].samples)
        assert requests >= load.ok
        actions = {s.labels["direction"]: s.value for s in families["portside_scaling_actions"].samples}
        assert actions.get("out", 0) >= 1 and actions.get("in", 0) >= 1
        assert families["portside_lb_request_duration_seconds"].type == "histogram"
        desired = [s.value for s in families["portside_service_desired_tasks"].samples]
        assert desired == [1]
    finally:
        if load is not None:
            load.stop.set()
        server.stop()
        remove_server_containers(docker_client, server)


def server_store(server: PortsideProcess) -> Store:
    """The server's own store (its --store, else the SQLite file in its state dir), opened beside it."""
    args = server.extra_args
    return Store(args[args.index("--store") + 1] if "--store" in args else server.state_dir / "portside.db")


def test_cpu_utilisation_scales_out(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    """Copies that burn more CPU than they reserved (128 units = 1/8 core) read as >100 % and scale out.

    The server's own agent measures the copy's cgroup and reports it (PublishMetrics); the control
    plane records AWS/ECS CPUUtilization and MemoryUtilization per service and cluster in the
    store, and target tracking reads them from there."""
    server = PortsideProcess(tmp_path / "state", "--scaling-period", "1", "--stop-timeout", "1")
    server.start()
    try:
        ecs = server.client()
        aas = server.client("application-autoscaling")
        td = ecs.register_task_definition(
            family="burn", cpu="128",
            containerDefinitions=[{"name": "burn", "image": busybox_image, "memory": 16, "stopTimeout": 1,
                                   "command": ["sh", "-c", "end=$(( $(date +%s) + 60 )); while [ $(date +%s) -lt $end ]; do :; done"]}],
        )["taskDefinition"]
        ecs.create_service(serviceName="burn", taskDefinition=td["taskDefinitionArn"], desiredCount=1)
        resource = "service/default/burn"
        aas.register_scalable_target(
            ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=1, MaxCapacity=2,
        )
        aas.put_scaling_policy(
            PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 50.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
            },
        )
        _wait(lambda: ecs.describe_services(services=["burn"])["services"][0]["desiredCount"] == 2, "CPU scale-out", 60)
        activities = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]
        assert any("triggered policy cpu" in a["Cause"] for a in activities if a["StatusCode"] == "Successful")
        store = server_store(server)
        try:
            service = {"ClusterName": "default", "ServiceName": "burn"}

            def points(metric: str, dimensions: dict[str, str]) -> list[Any]:
                return store.metric_datapoints("us-east-1", "AWS/ECS", metric, dimensions, 0, time.time() + 60)

            cpu = points("CPUUtilization", service)
            assert max(p.stats.maximum for p in cpu) > 100  # a spinning shell against 1/8 of a core
            assert {p.unit for p in cpu} == {"Percent"} and {p.resolution for p in cpu} == {1}  # --scaling-period 1
            memory = points("MemoryUtilization", service)  # against the 16 MiB hard limit
            assert memory and all(0 < p.stats.maximum <= 100 for p in memory)
            assert points("CPUUtilization", {"ClusterName": "default"})
            assert points("MemoryUtilization", {"ClusterName": "default"})
        finally:
            store.close()
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


def test_memory_utilisation_scales_out(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    """A copy holding 20 MB of its 64 MiB (about 30 %) is over a 20 % memory target and scales out."""
    server = PortsideProcess(tmp_path / "state", "--scaling-period", "1", "--stop-timeout", "1")
    server.start()
    try:
        ecs = server.client()
        aas = server.client("application-autoscaling")
        td = ecs.register_task_definition(
            family="hold",
            containerDefinitions=[{"name": "hold", "image": busybox_image, "memory": 64, "stopTimeout": 1,
                                   "command": ["sh", "-c", "x=$(yes | head -c 20000000); while :; do sleep 1; done"]}],
        )["taskDefinition"]
        ecs.create_service(serviceName="hold", taskDefinition=td["taskDefinitionArn"], desiredCount=1)
        resource = "service/default/hold"
        aas.register_scalable_target(
            ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=1, MaxCapacity=2,
        )
        aas.put_scaling_policy(
            PolicyName="memory", ServiceNamespace="ecs", ResourceId=resource,
            ScalableDimension="ecs:service:DesiredCount", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 20.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0, "DisableScaleIn": True,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageMemoryUtilization"},
            },
        )
        _wait(lambda: ecs.describe_services(services=["hold"])["services"][0]["desiredCount"] == 2, "memory scale-out", 60)
        activities = aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=resource)["ScalingActivities"]
        assert any("triggered policy memory" in a["Cause"] for a in activities if a["StatusCode"] == "Successful")
    finally:
        server.stop()
        remove_server_containers(docker_client, server)
