"""Tasks on the real Docker Engine, driven through boto3 like a user would."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

pytestmark = pytest.mark.docker

FAST_WAITER = {"Delay": 1, "MaxAttempts": 90}


def web_definition(image: str, family: str = "web", **container: Any) -> dict[str, Any]:
    definition = {
        "name": "web",
        "image": image,
        "memory": 32,
        "portMappings": [{"containerPort": 80, "hostPort": 0}],
        "stopTimeout": 2,
    }
    definition.update(container)
    return {"family": family, "containerDefinitions": [definition]}


def run(ecs: Any, definition: dict[str, Any], count: int = 1, **params: Any) -> list[str]:
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    result = ecs.run_task(taskDefinition=arn, count=count, **params)
    assert result["failures"] == []
    return [t["taskArn"] for t in result["tasks"]]


def wait_running(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    for i in range(0, len(arns), 100):
        ecs.get_waiter("tasks_running").wait(tasks=arns[i : i + 100], WaiterConfig=FAST_WAITER)
    return describe(ecs, arns)


def wait_stopped(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    ecs.get_waiter("tasks_stopped").wait(tasks=arns, WaiterConfig=FAST_WAITER)
    return describe(ecs, arns)


def describe(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    tasks = []
    for i in range(0, len(arns), 100):
        tasks.extend(ecs.describe_tasks(tasks=arns[i : i + 100])["tasks"])
    return tasks


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read().decode()


def host_port(task: dict[str, Any], container: int = 0) -> int:
    return int(task["containers"][container]["networkBindings"][0]["hostPort"])


def test_fifty_copies_each_on_its_own_port_in_range(ecs: Any, busybox_image: str) -> None:
    arns: list[str] = []
    for _ in range(5):
        arns += run(ecs, web_definition(busybox_image, family="fifty"), count=10)
    tasks = wait_running(ecs, arns)
    ports = [host_port(t) for t in tasks]
    low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert len(set(ports)) == 50
    assert all(low <= p <= high for p in ports)
    for task in tasks:
        binding = task["containers"][0]["networkBindings"]
        assert len(binding) == 1  # IPv6 duplicates dropped
        assert binding[0]["containerPort"] == 80 and binding[0]["protocol"] == "tcp"
        assert binding[0]["bindIP"] == "127.0.0.1"
    hostnames = {get(f"http://127.0.0.1:{p}/cgi-bin/whoami").splitlines()[0] for p in ports}
    assert len(hostnames) == 50
    listed = ecs.get_paginator("list_tasks").paginate(family="fifty", PaginationConfig={"PageSize": 7})
    assert sorted(a for page in listed for a in page["taskArns"]) == sorted(arns)
    instance = ecs.describe_container_instances(
        containerInstances=ecs.list_container_instances()["containerInstanceArns"]
    )["containerInstances"][0]
    assert instance["runningTasksCount"] >= 50
    for arn in arns:
        ecs.stop_task(task=arn)
    wait_stopped(ecs, arns)


def test_limits_reach_docker(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    definition = web_definition(busybox_image, family="limits", memory=64, memoryReservation=32, cpu=256)
    [arn] = run(ecs, definition)
    [task] = wait_running(ecs, [arn])
    container = docker_client.containers.get(task["containers"][0]["runtimeId"])
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == 64 * 1024 * 1024
    assert host_config["MemoryReservation"] == 32 * 1024 * 1024
    assert host_config["CpuShares"] == 256
    labels = container.labels
    assert labels["com.amazonaws.ecs.task-arn"] == arn
    assert labels["com.amazonaws.ecs.container-name"] == "web"
    assert container.name == f"ecs-limits-{task['taskDefinitionArn'].rsplit(':', 1)[1]}-web-{arn.rsplit('/', 1)[1]}"
    assert task["cpu"] == "256" and task["memory"] == "32"
    ecs.stop_task(task=arn)


def test_out_of_memory_kill_is_reported_as_ecs_does(ecs: Any, busybox_image: str) -> None:
    definition = web_definition(busybox_image, family="oom", memory=16, command=["/www/cgi-bin/alloc", "256"])
    definition["containerDefinitions"][0].pop("portMappings")
    [arn] = run(ecs, definition)
    [task] = wait_stopped(ecs, [arn])
    container = task["containers"][0]
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert task["stoppedReason"] == "Essential container in task exited"
    assert task["stopCode"] == "EssentialContainerExited"
    assert container["lastStatus"] == "STOPPED"


def test_essential_exit_stops_the_task_with_exit_code(ecs: Any, busybox_image: str) -> None:
    definition = web_definition(busybox_image, family="exits", command=["sh", "-c", "exit 3"])
    [arn] = run(ecs, definition)
    [task] = wait_stopped(ecs, [arn])
    assert task["containers"][0]["exitCode"] == 3
    assert task["stopCode"] == "EssentialContainerExited"
    assert {"createdAt", "stoppedAt", "stoppingAt"} <= set(task)


def test_stop_task_sends_sigterm_and_reports_reason(ecs: Any, busybox_image: str) -> None:
    [arn] = run(ecs, web_definition(busybox_image, family="stopper"), startedBy="tester")
    [task] = wait_running(ecs, [arn])
    assert task["startedBy"] == "tester" and task["group"] == "family:stopper"
    stopped = ecs.stop_task(task=arn, reason="enough")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    [task] = wait_stopped(ecs, [arn])
    assert task["stoppedReason"] == "enough"
    assert task["stopCode"] == "UserInitiated"
    assert task["containers"][0]["exitCode"] == 143  # SIGTERM honoured, not SIGKILL
    assert task["stoppedAt"] >= task["startedAt"] >= task["createdAt"]
    assert arn in ecs.list_tasks(desiredStatus="STOPPED")["taskArns"]
    assert arn not in ecs.list_tasks()["taskArns"]


def test_overrides_of_command_and_environment(ecs: Any, busybox_image: str) -> None:
    definition = web_definition(busybox_image, family="overrides", environment=[{"name": "PORTSIDE_COPY", "value": "base"}])
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    overrides = {"containerOverrides": [{"name": "web", "environment": [{"name": "PORTSIDE_COPY", "value": "over"}]}]}
    [task] = ecs.run_task(taskDefinition=arn, overrides=overrides)["tasks"]
    [task] = wait_running(ecs, [task["taskArn"]])
    assert "copy=over" in get(f"http://127.0.0.1:{host_port(task)}/cgi-bin/whoami")
    ecs.stop_task(task=task["taskArn"])


def test_health_check_reported_healthy_and_unhealthy(ecs: Any, busybox_image: str) -> None:
    good = web_definition(
        busybox_image, family="healthy",
        healthCheck={"command": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/ || exit 1"], "interval": 5, "retries": 1, "timeout": 2},
    )
    bad = web_definition(
        busybox_image, family="unhealthy",
        healthCheck={"command": ["CMD", "false"], "interval": 5, "retries": 1, "timeout": 2},
    )
    arns = run(ecs, good) + run(ecs, bad)
    wait_running(ecs, arns)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = describe(ecs, arns)
        if [t["healthStatus"] for t in tasks] == ["HEALTHY", "UNHEALTHY"]:
            break
        time.sleep(0.5)
    assert [t["containers"][0]["healthStatus"] for t in tasks] == ["HEALTHY", "UNHEALTHY"]
    assert [t["healthStatus"] for t in tasks] == ["HEALTHY", "UNHEALTHY"]
    for arn in arns:
        ecs.stop_task(task=arn)


def test_client_token_makes_run_task_idempotent(ecs: Any, busybox_image: str) -> None:
    arn = ecs.register_task_definition(**web_definition(busybox_image, family="token"))["taskDefinition"]["taskDefinitionArn"]
    first = ecs.run_task(taskDefinition=arn, count=2, clientToken="same-token")["tasks"]
    again = ecs.run_task(taskDefinition=arn, count=2, clientToken="same-token")["tasks"]
    assert [t["taskArn"] for t in first] == [t["taskArn"] for t in again]
    assert len(ecs.list_tasks(family="token")["taskArns"]) == 2
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.run_task(taskDefinition=arn, count=3, clientToken="same-token")
    for task in first:
        ecs.stop_task(task=task["taskArn"])


def test_missing_image_fails_with_cannot_pull(ecs: Any) -> None:
    definition = web_definition("portside-test/does-not-exist:1", family="noimage")
    [arn] = run(ecs, definition)
    [task] = wait_stopped(ecs, [arn])
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("CannotPullContainerError")


def test_static_host_port_conflict_is_resource_ports(ecs: Any, busybox_image: str) -> None:
    from tests.support.server import free_port

    port = free_port()
    definition = web_definition(busybox_image, family="static", portMappings=[{"containerPort": 80, "hostPort": port}])
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    result = ecs.run_task(taskDefinition=arn, count=2)
    assert len(result["tasks"]) == 1
    assert [f["reason"] for f in result["failures"]] == ["RESOURCE:PORTS"]
    [task] = wait_running(ecs, [result["tasks"][0]["taskArn"]])
    assert host_port(task) == port
    assert get(f"http://127.0.0.1:{port}/")
    instance = ecs.describe_container_instances(
        containerInstances=ecs.list_container_instances()["containerInstanceArns"]
    )["containerInstances"][0]
    remaining = {r["name"]: r for r in instance["remainingResources"]}
    assert str(port) in remaining["PORTS"]["stringSetValue"]
    ecs.stop_task(task=task["taskArn"])


def test_describe_and_list_edge_cases(ecs: Any) -> None:
    missing = "arn:aws:ecs:us-east-1:000000000000:task/default/" + "0" * 32
    result = ecs.describe_tasks(tasks=[missing])
    assert result["failures"] == [{"arn": missing, "reason": "MISSING"}]
    assert ecs.list_tasks(desiredStatus="PENDING")["taskArns"] == []
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_tasks(cluster="nope")
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(task="0" * 32)
