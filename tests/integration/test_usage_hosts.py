"""CPU scaling of copies on another host: its agent measures them and reports over HTTP.

One namespace host with its own Docker Engine (tests/support/hosts.py), whose containers live under
``--cgroup-parent /psh<pid>-<host>``, a path no fixed layout guesses: the agent finds each copy's
cgroup through Docker. Copies run only on that host (memberOf its agent's attribute); the server's
own host runs none, so every datapoint comes from the remote agent's PublishMetrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_many_hosts import AGENT_KEY, AGENT_SECRET, KEY, SECRET, WORKERS, Agent
from tests.integration.test_scaling import server_store
from tests.support.hosts import ROOT_ADDRESS
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

BURN = ["sh", "-c", "end=$(( $(date +%s) + 90 )); while [ $(date +%s) -lt $end ]; do :; done"]


@pytest.fixture
def remote(make_cluster: Any, tmp_path: Path) -> Iterator[tuple[PortsideProcess, Agent]]:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[agent]\naws_access_key_id = {AGENT_KEY}\naws_secret_access_key = {AGENT_SECRET}\n"
    )
    credentials.chmod(0o600)
    (host,) = make_cluster(1).hosts
    server = PortsideProcess(tmp_path / "server", "--credentials", str(credentials), "--scaling-period", "1",
                             "--stop-timeout", "1", api_host=ROOT_ADDRESS)
    agent = None
    try:
        server.start()
        agent = Agent(host, server.endpoint, credentials, "us-east-1a")
        yield server, agent
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def test_a_busy_copy_on_another_host_is_measured_there_and_scales_its_service_out(
    remote: tuple[PortsideProcess, Agent], busybox_image: str
) -> None:
    server, agent = remote
    ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    aas = server.client("application-autoscaling", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    td = ecs.register_task_definition(
        family="burn", cpu="128",
        containerDefinitions=[{"name": "burn", "image": busybox_image, "memory": 16, "stopTimeout": 1, "command": BURN}],
    )["taskDefinition"]
    eventually(lambda: len(ecs.list_container_instances()["containerInstanceArns"]) == 2, 60, 0.5,
               "the remote agent registered beside the server's own")
    ecs.create_service(serviceName="burn", taskDefinition=td["taskDefinitionArn"], desiredCount=1,
                       placementConstraints=WORKERS)
    resource = "service/default/burn"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource,
                                 ScalableDimension="ecs:service:DesiredCount", MinCapacity=1, MaxCapacity=2)
    aas.put_scaling_policy(
        PolicyName="cpu", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        },
    )
    try:
        eventually(lambda: ecs.describe_services(services=["burn"])["services"][0]["desiredCount"] == 2, 90, 0.5,
                   "CPU scale-out of the remote copy's service")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{agent.log()}\n{server.log()[-3000:]}") from None
    tasks = ecs.describe_tasks(tasks=ecs.list_tasks(serviceName="burn")["taskArns"])["tasks"]
    instances = ecs.describe_container_instances(containerInstances=[t["containerInstanceArn"] for t in tasks])
    assert {i["ec2InstanceId"] for i in instances["containerInstances"]} == {agent.host.instance_id}
    store = server_store(server)
    try:
        cpu = store.metric_datapoints("us-east-1", "AWS/ECS", "CPUUtilization",
                                      {"ClusterName": "default", "ServiceName": "burn"}, 0, time.time() + 60)
        assert max(p.stats.maximum for p in cpu) > 50
    finally:
        store.close()
