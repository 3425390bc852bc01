"""Task definition features on the real Docker Engine, driven through boto3, the AWS CLI and raw HTTP.

Multi-container tasks (links, dependsOn, volumes, volumesFrom, the container knobs that map
straight onto Docker), network modes, containerPortRange, port exhaustion, regions,
pagination, the AWS CLI, the API's answers to malformed requests, and deregistration.

The module's server keeps stopped tasks' containers (``--task-cleanup-wait 3600``) so their
``docker inspect`` timestamps can be read after a stop, and resyncs only every 30 s so that
every transition checked here is driven by Docker's events and the agent's own work, not
by the periodic safety net.
"""

from __future__ import annotations

import calendar
import contextlib
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.integration.test_tasks import describe, get, host_port, web_definition
from tests.support.server import PortsideProcess, free_port
from tests.support.signing import signed_post

pytestmark = pytest.mark.docker

AWSVPC_NETWORK = "portside-awsvpc"
POLL_S = 0.2
WAIT_S = 30.0
HEALTH = {"interval": 5, "timeout": 2, "retries": 1}
PORTS_EXHAUSTED = "HostConfigError: error retrieving docker port map: a host port is unavailable"
# Docker volumes the tests created, removed when the module ends.
VOLUMES: list[str] = []


@pytest.fixture(scope="module")
def portside(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str) -> Iterator[PortsideProcess]:
    # Host-path volumes and host networking are refused unless allowed: allow the session's
    # temporary directories, and the host network mode one test runs.
    server = PortsideProcess(
        tmp_path_factory.mktemp("features"), "--task-cleanup-wait", "3600", "--resync-interval", "30",
        "--allow-host-path", str(tmp_path_factory.getbasetemp()), "--allow-host-namespaces",
    )
    server.start()
    yield server
    server.stop()
    remove_server_containers(docker_client, server)
    for name in VOLUMES:
        with contextlib.suppress(docker.errors.NotFound):  # already gone
            docker_client.volumes.get(name).remove(force=True)


# -- helpers


def box(image: str, name: str, **fields: Any) -> dict[str, Any]:
    """A busybox-web container definition (httpd on :80 by default) with a short stop timeout."""
    definition: dict[str, Any] = {"name": name, "image": image, "memory": 32, "stopTimeout": 2}
    definition.update(fields)
    return definition


def register(ecs: Any, family: str, containers: list[dict[str, Any]], **task: Any) -> dict[str, Any]:
    return ecs.register_task_definition(family=family, containerDefinitions=containers, **task)["taskDefinition"]


def run_one(ecs: Any, family: str, containers: list[dict[str, Any]], **task: Any) -> str:
    arn = register(ecs, family, containers, **task)["taskDefinitionArn"]
    result = ecs.run_task(taskDefinition=arn)
    assert result["failures"] == []
    return str(result["tasks"][0]["taskArn"])


def wait_status(ecs: Any, arns: list[str], status: str, timeout: float = WAIT_S) -> list[dict[str, Any]]:
    """Poll DescribeTasks until every task's lastStatus is ``status`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = describe(ecs, arns)
        if all(t["lastStatus"] == status for t in tasks):
            return tasks
        if status != "STOPPED" and any(t["lastStatus"] == "STOPPED" for t in tasks):
            raise AssertionError(f"a task stopped while waiting for {status}: {[_summary(t) for t in tasks]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks not {status} after {timeout} s: {[_summary(t) for t in tasks]}")
        time.sleep(POLL_S)


def wait_running(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    return wait_status(ecs, arns, "RUNNING")


def wait_stopped(ecs: Any, arns: list[str], timeout: float = WAIT_S) -> list[dict[str, Any]]:
    return wait_status(ecs, arns, "STOPPED", timeout)


def stop(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    for arn in arns:
        ecs.stop_task(task=arn)
    return wait_stopped(ecs, arns)


def _summary(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("lastStatus", "stopCode", "stoppedReason")
    return {k: task.get(k) for k in keys} | {
        c["name"]: (c["lastStatus"], c.get("exitCode"), c.get("reason")) for c in task["containers"]
    }


def container(task: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in task["containers"] if c["name"] == name]
    return found


def inspect(docker_client: Any, task: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(docker_client.api.inspect_container(container(task, name)["runtimeId"]))


def sh(docker_client: Any, task: dict[str, Any], name: str, script: str) -> tuple[int, str]:
    """Run ``sh -c script`` inside a task's container (as the container's user): (exit code, output)."""
    result = docker_client.api.exec_create(container(task, name)["runtimeId"], ["sh", "-c", script])
    output = docker_client.api.exec_start(result["Id"]).decode()
    return int(docker_client.api.exec_inspect(result["Id"])["ExitCode"]), output


def nanos(docker_time: str) -> int:
    """Docker's RFC 3339 timestamp (trailing zeros of the fraction trimmed) as Unix nanoseconds."""
    base, _, fraction = docker_time.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def started(state: dict[str, Any]) -> int:
    return nanos(state["State"]["StartedAt"])


def finished(state: dict[str, Any]) -> int:
    return nanos(state["State"]["FinishedAt"])


def never_started(state: dict[str, Any]) -> bool:
    return str(state["State"]["StartedAt"]).startswith("0001-01-01")


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


# -- 1. multi-container tasks


def test_links_reach_the_linked_container_by_alias_and_stop_in_reverse_order(
    ecs: Any, busybox_image: str, docker_client: Any
) -> None:
    arn = run_one(
        ecs,
        "feat-links",
        [
            box(busybox_image, "backend"),
            box(busybox_image, "frontend", links=["backend:api"], portMappings=[{"containerPort": 80}]),
        ],
    )
    [task] = wait_running(ecs, [arn])
    backend, frontend = inspect(docker_client, task, "backend"), inspect(docker_client, task, "frontend")
    code, out = sh(docker_client, task, "frontend", "timeout 5 wget -q -O - http://api/cgi-bin/whoami")
    assert code == 0, out
    assert out.splitlines()[0] == backend["Config"]["Hostname"]
    assert started(backend) <= started(frontend)

    stop(ecs, [arn])
    backend, frontend = inspect(docker_client, task, "backend"), inspect(docker_client, task, "frontend")
    assert finished(frontend) < finished(backend)  # the dependent stops first, its dependency after


def test_depends_on_start_complete_success_and_healthy(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    arn = run_one(
        ecs,
        "feat-order",
        [
            box(busybox_image, "app", portMappings=[{"containerPort": 80}],
                mountPoints=[{"sourceVolume": "work", "containerPath": "/www/work", "readOnly": True}],
                dependsOn=[
                    {"containerName": "logger", "condition": "START"},
                    {"containerName": "warmup", "condition": "COMPLETE"},
                    {"containerName": "migrate", "condition": "SUCCESS"},
                    {"containerName": "sidecar", "condition": "HEALTHY"},
                ]),
            box(busybox_image, "logger"),
            box(busybox_image, "warmup", essential=False, command=["sh", "-c", "sleep 0.5; exit 3"]),
            box(busybox_image, "migrate", essential=False,
                mountPoints=[{"sourceVolume": "work", "containerPath": "/work"}],
                command=["sh", "-c", "sleep 0.5; echo migrated > /work/done.txt"]),
            box(busybox_image, "sidecar", healthCheck={
                "command": ["CMD-SHELL", "timeout 2 wget -q -O /dev/null http://127.0.0.1/ || exit 1"], **HEALTH}),
        ],
        volumes=[{"name": "work", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}],
    )
    [task] = wait_running(ecs, [arn])
    VOLUMES.append(f"ecs-feat-order-{task['taskDefinitionArn'].rsplit(':', 1)[1]}-work-{arn.rsplit('/', 1)[1]}")
    state = {c["name"]: inspect(docker_client, task, c["name"]) for c in task["containers"]}
    app_started = started(state["app"])
    assert started(state["logger"]) <= app_started
    assert finished(state["warmup"]) <= app_started and state["warmup"]["State"]["ExitCode"] == 3
    assert finished(state["migrate"]) <= app_started and state["migrate"]["State"]["ExitCode"] == 0
    healthy_at = min(nanos(h["End"]) for h in state["sidecar"]["State"]["Health"]["Log"] if h["ExitCode"] == 0)
    assert healthy_at <= app_started
    assert container(task, "warmup")["exitCode"] == 3 and container(task, "warmup")["lastStatus"] == "STOPPED"
    assert container(task, "migrate")["exitCode"] == 0
    assert container(task, "sidecar")["healthStatus"] == "HEALTHY"
    assert get(f"http://127.0.0.1:{host_port(task)}/work/done.txt").strip() == "migrated"
    stop(ecs, [arn])


def test_failed_success_dependency_fails_the_task_to_start(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    arn = run_one(
        ecs,
        "feat-initfail",
        [
            box(busybox_image, "init", essential=False, command=["sh", "-c", "exit 1"]),
            box(busybox_image, "app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
        ],
    )
    [task] = wait_stopped(ecs, [arn], timeout=10)
    assert task["stopCode"] == "TaskFailedToStart"
    assert "app" in task["stoppedReason"] and "depend" in task["stoppedReason"].lower()
    assert container(task, "init")["exitCode"] == 1
    assert container(task, "app")["lastStatus"] == "STOPPED"
    assert never_started(inspect(docker_client, task, "app"))


def test_start_timeout_of_the_dependency_bounds_the_wait(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    # ECS: "If a startTimeout value is specified for containerB and it doesn't reach the desired
    # status within that time then containerA gives up and not start" (ContainerDefinition.startTimeout).
    began = time.monotonic()
    arn = run_one(
        ecs,
        "feat-slowinit",
        [
            box(busybox_image, "init", essential=False, startTimeout=2, command=["sh", "-c", "sleep 25"]),
            box(busybox_image, "app", dependsOn=[{"containerName": "init", "condition": "COMPLETE"}]),
        ],
    )
    [task] = wait_stopped(ecs, [arn], timeout=15)
    assert time.monotonic() - began < 12
    assert task["stopCode"] == "TaskFailedToStart"
    assert never_started(inspect(docker_client, task, "app"))


def test_volumes_host_paths_read_only_mounts_and_volumes_from(
    ecs: Any, busybox_image: str, docker_client: Any, tmp_path: Path
) -> None:
    host_dir = tmp_path / "shared-from-host"
    host_dir.mkdir()
    (host_dir / "hello.txt").write_text("from the host\n")
    arn = run_one(
        ecs,
        "feat-volumes",
        [
            box(busybox_image, "writer", essential=False,
                mountPoints=[{"sourceVolume": "scratch", "containerPath": "/data"},
                             {"sourceVolume": "hostdir", "containerPath": "/host"}],
                command=["sh", "-c", "echo from the writer > /data/msg.txt && echo from a container > /host/back.txt"]),
            box(busybox_image, "web", portMappings=[{"containerPort": 80}],
                dependsOn=[{"containerName": "writer", "condition": "SUCCESS"}],
                mountPoints=[{"sourceVolume": "scratch", "containerPath": "/www/scratch", "readOnly": True},
                             {"sourceVolume": "hostdir", "containerPath": "/www/host", "readOnly": True}]),
            box(busybox_image, "reader", volumesFrom=[{"sourceContainer": "writer", "readOnly": True}]),
        ],
        volumes=[
            {"name": "scratch", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}},
            {"name": "hostdir", "host": {"sourcePath": str(host_dir)}},
        ],
    )
    [task] = wait_running(ecs, [arn])
    revision = task["taskDefinitionArn"].rsplit(":", 1)[1]
    VOLUMES.append(f"ecs-feat-volumes-{revision}-scratch-{arn.rsplit('/', 1)[1]}")
    port = host_port(task, 1)
    assert get(f"http://127.0.0.1:{port}/scratch/msg.txt") == "from the writer\n"
    assert get(f"http://127.0.0.1:{port}/host/hello.txt") == "from the host\n"
    assert (host_dir / "back.txt").read_text() == "from a container\n"
    code, out = sh(docker_client, task, "web", "echo no > /www/scratch/x")
    assert code != 0 and "Read-only file system" in out
    code, out = sh(docker_client, task, "web", "echo no > /www/host/x")
    assert code != 0 and "Read-only file system" in out
    assert not (host_dir / "x").exists()
    assert sh(docker_client, task, "reader", "cat /data/msg.txt") == (0, "from the writer\n")
    code, out = sh(docker_client, task, "reader", "echo no > /data/x")
    assert code != 0 and "Read-only file system" in out
    stop(ecs, [arn])


def test_container_settings_reach_docker(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    arn = run_one(
        ecs,
        "feat-knobs",
        [
            box(busybox_image, "knobs",
                dockerLabels={"com.example.team": "edge", "tier": "web"},
                user="nobody",
                readonlyRootFilesystem=True,
                ulimits=[{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                extraHosts=[{"hostname": "db.internal", "ipAddress": "10.1.2.3"}],
                workingDirectory="/www/cgi-bin",
                entryPoint=["/bin/portside-init", "sh", "-c"],
                command=["exec httpd -f -p 8080 -h /www"]),
        ],
    )
    [task] = wait_running(ecs, [arn])
    state = inspect(docker_client, task, "knobs")
    config, host_config = state["Config"], state["HostConfig"]
    assert config["Labels"]["com.example.team"] == "edge" and config["Labels"]["tier"] == "web"
    assert config["Labels"]["com.amazonaws.ecs.task-arn"] == arn
    assert config["User"] == "nobody"
    assert config["WorkingDir"] == "/www/cgi-bin"
    assert config["Entrypoint"] == ["/bin/portside-init", "sh", "-c"]
    assert config["Cmd"] == ["exec httpd -f -p 8080 -h /www"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host_config["ExtraHosts"] == ["db.internal:10.1.2.3"]

    assert sh(docker_client, task, "knobs", "id -u") == (0, "65534\n")
    assert sh(docker_client, task, "knobs", "readlink /proc/1/cwd") == (0, "/www/cgi-bin\n")
    code, out = sh(docker_client, task, "knobs", "touch /probe")
    assert code != 0 and "Read-only file system" in out
    # The task's own process (an exec'd one occasionally gets soft = hard from this engine).
    code, out = sh(docker_client, task, "knobs", "grep 'open files' /proc/1/limits")
    assert code == 0 and out.split()[3:5] == ["1024", "2048"], out
    code, out = sh(docker_client, task, "knobs", "grep db.internal /etc/hosts")
    assert code == 0 and out.split() == ["10.1.2.3", "db.internal"]
    code, out = sh(docker_client, task, "knobs", "timeout 5 wget -q -O - http://127.0.0.1:8080/cgi-bin/whoami")
    assert code == 0 and out.splitlines()[0] == config["Hostname"]  # the command ran under the entryPoint
    code, _ = sh(docker_client, task, "knobs", "timeout 5 wget -q -O - http://127.0.0.1:80/")
    assert code != 0  # the image's default command (httpd on :80) did not run
    stop(ecs, [arn])


# -- 2. network modes


def _eni_address(task: dict[str, Any]) -> str:
    [attachment] = task["attachments"]
    assert attachment["type"] == "ElasticNetworkInterface" and attachment["status"] == "ATTACHED"
    details = {d["name"]: d["value"] for d in attachment["details"]}
    return str(details["privateIPv4Address"])


def _awsvpc_subnet(docker_client: Any) -> ipaddress.IPv4Network:
    network = docker_client.api.inspect_network(AWSVPC_NETWORK)
    return ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])


def test_awsvpc_task_gets_its_own_address(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    registered = register(ecs, "feat-awsvpc", [box(busybox_image, "web", portMappings=[{"containerPort": 80}])],
                          networkMode="awsvpc")
    assert registered["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]
    [created] = ecs.run_task(taskDefinition=registered["taskDefinitionArn"])["tasks"]
    [task] = wait_running(ecs, [created["taskArn"]])
    address = _eni_address(task)
    assert ipaddress.ip_address(address) in _awsvpc_subnet(docker_client)
    web = container(task, "web")
    assert [i["privateIpv4Address"] for i in web["networkInterfaces"]] == [address]
    assert web["networkBindings"] == []
    state = inspect(docker_client, task, "web")
    assert state["NetworkSettings"]["Networks"][AWSVPC_NETWORK]["IPAddress"] == address
    assert not state["HostConfig"]["PortBindings"]
    assert all(not bound for bound in (state["NetworkSettings"]["Ports"] or {}).values())
    assert get(f"http://{address}:80/cgi-bin/whoami").splitlines()[0] == state["Config"]["Hostname"]
    instance = ecs.describe_container_instances(
        containerInstances=ecs.list_container_instances()["containerInstanceArns"]
    )["containerInstances"][0]
    assert "80" not in {r["name"]: r for r in instance["remainingResources"]}["PORTS"]["stringSetValue"]
    [stopped] = stop(ecs, [task["taskArn"]])
    assert stopped["attachments"][0]["status"] == "DELETED"


def test_awsvpc_containers_share_localhost(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    # As in App Mesh task definitions, the app comes first and waits for its proxy.
    arn = run_one(
        ecs,
        "feat-awsvpc-pair",
        [
            box(busybox_image, "app", portMappings=[{"containerPort": 80}],
                dependsOn=[{"containerName": "proxy", "condition": "START"}]),
            box(busybox_image, "proxy", portMappings=[{"containerPort": 9901}],
                command=["httpd", "-f", "-p", "9901", "-h", "/www"]),
        ],
        networkMode="awsvpc",
    )
    [task] = wait_running(ecs, [arn])
    address = _eni_address(task)
    for name in ("app", "proxy"):
        assert [i["privateIpv4Address"] for i in container(task, name)["networkInterfaces"]] == [address]
    code, out = sh(docker_client, task, "proxy", "timeout 5 wget -q -O - http://localhost:80/cgi-bin/whoami")
    assert code == 0, out
    code, out = sh(docker_client, task, "app", "timeout 5 wget -q -O - http://localhost:9901/cgi-bin/whoami")
    assert code == 0, out
    assert get(f"http://{address}:80/")
    assert get(f"http://{address}:9901/")
    stop(ecs, [arn])


def test_host_mode_static_port_and_second_copy_refused(ecs: Any, busybox_image: str) -> None:
    port = free_port()
    registered = register(
        ecs, "feat-host",
        [box(busybox_image, "web", portMappings=[{"containerPort": port}],
             command=["httpd", "-f", "-p", str(port), "-h", "/www"])],
        networkMode="host",
    )
    assert registered["containerDefinitions"][0]["portMappings"][0]["hostPort"] == port
    result = ecs.run_task(taskDefinition=registered["taskDefinitionArn"], count=2)
    assert len(result["tasks"]) == 1
    assert [f["reason"] for f in result["failures"]] == ["RESOURCE:PORTS"]
    [task] = wait_running(ecs, [result["tasks"][0]["taskArn"]])
    [binding] = container(task, "web")["networkBindings"]
    assert binding["containerPort"] == binding["hostPort"] == port
    assert get(f"http://127.0.0.1:{port}/cgi-bin/whoami").splitlines()[0] == socket.gethostname()
    again = ecs.run_task(taskDefinition=registered["taskDefinitionArn"])
    assert again["tasks"] == [] and [f["reason"] for f in again["failures"]] == ["RESOURCE:PORTS"]
    stop(ecs, [task["taskArn"]])


def test_none_network_mode_has_only_loopback(ecs: Any, busybox_image: str, docker_client: Any) -> None:
    arn = run_one(ecs, "feat-none", [box(busybox_image, "solo")], networkMode="none")
    [task] = wait_running(ecs, [arn])
    assert container(task, "solo")["networkBindings"] == []
    assert task["attachments"] == []
    assert inspect(docker_client, task, "solo")["HostConfig"]["NetworkMode"] == "none"
    assert sh(docker_client, task, "solo", "ls /sys/class/net") == (0, "lo\n")
    stop(ecs, [arn])


# -- 3. containerPortRange


def test_container_port_range_gets_contiguous_host_ports(ecs: Any, busybox_image: str) -> None:
    script = "for p in 8000 8001 8002; do httpd -p $p -h /www; done; exec httpd -f -p 8003 -h /www"
    arn = run_one(
        ecs, "feat-range",
        [box(busybox_image, "web", portMappings=[{"containerPortRange": "8000-8003"}], command=["sh", "-c", script])],
    )
    [task] = wait_running(ecs, [arn])
    [binding] = container(task, "web")["networkBindings"]
    assert binding["containerPortRange"] == "8000-8003" and binding["protocol"] == "tcp"
    assert "hostPort" not in binding and "containerPort" not in binding
    first, last = (int(p) for p in binding["hostPortRange"].split("-"))
    assert last - first == 3
    hostnames = set()
    for port in range(first, last + 1):
        hostnames.add(get(f"http://127.0.0.1:{port}/cgi-bin/whoami").splitlines()[0])
    assert len(hostnames) == 1
    stop(ecs, [arn])


def test_task_scoped_volume_goes_with_the_task(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    # A server that removes a stopped task's containers at once (--task-cleanup-wait 0).
    shared = f"featshared{uuid.uuid4().hex[:12]}"
    VOLUMES.append(shared)
    server = PortsideProcess(tmp_path / "state")
    server.start()
    try:
        ecs = server.client()
        mounts = [{"sourceVolume": "scratch", "containerPath": "/data"}, {"sourceVolume": shared, "containerPath": "/keep"}]
        arn = run_one(
            ecs, "feat-volgone",
            [box(busybox_image, "one", mountPoints=mounts), box(busybox_image, "two", mountPoints=mounts)],
            volumes=[{"name": "scratch", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}},
                     {"name": shared, "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": True}}],
        )
        [task] = wait_running(ecs, [arn])
        scratch = f"ecs-feat-volgone-{task['taskDefinitionArn'].rsplit(':', 1)[1]}-scratch-{arn.rsplit('/', 1)[1]}"
        VOLUMES.append(scratch)
        assert {docker_client.volumes.get(scratch).name, docker_client.volumes.get(shared).name} == {scratch, shared}
        stop(ecs, [arn])
        deadline = time.monotonic() + 10
        while scratch in {v.name for v in docker_client.volumes.list()} and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert scratch not in {v.name for v in docker_client.volumes.list()}  # destroyed with the task
        assert docker_client.volumes.get(shared).name == shared  # a shared volume outlives it
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


# -- 4. port exhaustion


def _free_block(size: int) -> int:
    """The first port of ``size`` contiguous TCP ports that bind now, below the kernel's ephemeral range."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    top = min(low, 32768) - size
    first = random.randrange(max(top - 4000, 10000), top)  # sessions running at once rarely pick the same
    for start in [*range(first, top, 37), *range(max(top - 4000, 10000), first, 37)]:
        sockets = []
        try:
            for port in range(start, start + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("0.0.0.0", port))
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    pytest.skip("no free block of host ports below the ephemeral range")


def test_port_exhaustion_and_reuse_after_quarantine(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    first = _free_block(3)
    server = PortsideProcess(
        tmp_path / "state", "--dynamic-port-range", f"{first}-{first + 2}", "--port-quarantine", "1",
    )
    server.start()
    try:
        ecs = server.client()
        arn = ecs.register_task_definition(**web_definition(busybox_image, family="feat-exhaust"))["taskDefinition"][
            "taskDefinitionArn"
        ]
        result = ecs.run_task(taskDefinition=arn, count=4)
        assert result["failures"] == []
        arns = [t["taskArn"] for t in result["tasks"]]
        tasks = wait_running(ecs, arns[:3])
        assert sorted(host_port(t) for t in tasks) == [first, first + 1, first + 2]
        [fourth] = describe(ecs, arns[3:])
        assert fourth["lastStatus"] == "STOPPED" and fourth["stopCode"] == "TaskFailedToStart"
        assert fourth["containers"][0]["reason"] == PORTS_EXHAUSTED
        assert fourth["stoppedReason"] == PORTS_EXHAUSTED

        freed = host_port(tasks[0])
        [stopped] = stop(ecs, [arns[0]])
        time.sleep(max(0.0, stopped["stoppedAt"].timestamp() + 1.5 - time.time()))  # past --port-quarantine
        [new] = ecs.run_task(taskDefinition=arn)["tasks"]
        [new] = wait_running(ecs, [new["taskArn"]])
        assert host_port(new) == freed
        assert get(f"http://127.0.0.1:{freed}/cgi-bin/whoami").splitlines()[0] == new["containers"][0]["runtimeId"][:12]
        stop(ecs, arns[1:3] + [new["taskArn"]])
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


# -- 5. regions


def test_regions_are_separate(portside: PortsideProcess, ecs: Any, busybox_image: str) -> None:
    east_td = register(ecs, "feat-region", [box(busybox_image, "web")])
    west = portside.client(region="us-west-2")
    west_arns = west.list_task_definitions()["taskDefinitionArns"] + west.list_task_definitions(status="INACTIVE")[
        "taskDefinitionArns"
    ]
    assert east_td["taskDefinitionArn"] not in west_arns
    assert all(":us-west-2:" in a for a in west_arns)
    assert west.list_task_definition_families(familyPrefix="feat-region")["families"] == []
    with pytest.raises(west.exceptions.ClientException):
        west.describe_task_definition(taskDefinition="feat-region")
    assert not any(":us-east-1:" in a for a in west.list_clusters()["clusterArns"])

    missing = west.describe_clusters(clusters=["feat-nowhere"])
    assert missing["clusters"] == []
    assert missing["failures"] == [
        {"arn": "arn:aws:ecs:us-west-2:000000000000:cluster/feat-nowhere", "reason": "MISSING"}
    ]
    west.create_cluster(clusterName="default")
    west_td = register(west, "feat-region", [box(busybox_image, "web")])
    assert west_td["taskDefinitionArn"].startswith("arn:aws:ecs:us-west-2:")
    assert west_td["revision"] == 1
    with pytest.raises(west.exceptions.InvalidParameterException) as excinfo:
        west.run_task(taskDefinition=west_td["taskDefinitionArn"])
    assert error_of(excinfo) == ("InvalidParameterException", "No Container Instances were found in your cluster.")
    assert ecs.list_task_definition_families(familyPrefix="feat-region")["families"] == ["feat-region"]
    assert east_td["taskDefinitionArn"] in ecs.list_task_definitions(familyPrefix="feat-region")["taskDefinitionArns"]


# -- 6. pagination


def _paginate(client: Any, operation: str, key: str, page_size: int, **params: Any) -> list[str]:
    pages = client.get_paginator(operation).paginate(PaginationConfig={"PageSize": page_size}, **params)
    return [item for page in pages for item in page[key]]


def test_pagination_returns_everything_once(ecs: Any, busybox_image: str) -> None:
    a = [register(ecs, "feat-page-a", [box(busybox_image, "web")])["taskDefinitionArn"] for _ in range(5)]
    b = [register(ecs, "feat-page-b", [box(busybox_image, "web")])["taskDefinitionArn"] for _ in range(2)]
    assert _paginate(ecs, "list_task_definitions", "taskDefinitionArns", 2, familyPrefix="feat-page-a") == a
    everything = _paginate(ecs, "list_task_definitions", "taskDefinitionArns", 3)
    assert len(everything) == len(set(everything)) and set(a + b) <= set(everything)
    assert _paginate(ecs, "list_task_definition_families", "families", 1, familyPrefix="feat-page-") == [
        "feat-page-a", "feat-page-b"
    ]
    clusters = [ecs.create_cluster(clusterName=f"feat-page-{i}")["cluster"]["clusterArn"] for i in range(5)]
    listed = _paginate(ecs, "list_clusters", "clusterArns", 2)
    assert len(listed) == len(set(listed)) and set(clusters) <= set(listed)
    assert len(_paginate(ecs, "list_container_instances", "containerInstanceArns", 1)) == 1

    result = ecs.run_task(taskDefinition=b[-1], count=3, startedBy="feat-pager")
    arns = [t["taskArn"] for t in result["tasks"]]
    assert sorted(_paginate(ecs, "list_tasks", "taskArns", 1, startedBy="feat-pager")) == sorted(arns)
    wait_running(ecs, arns)
    stop(ecs, arns)
    assert sorted(_paginate(ecs, "list_tasks", "taskArns", 2, startedBy="feat-pager", desiredStatus="STOPPED")) == sorted(arns)

    for operation in ("list_task_definitions", "list_task_definition_families", "list_clusters",
                      "list_container_instances", "list_tasks"):
        call = getattr(ecs, operation)
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            call(nextToken="this-is-not-a-token")
        for size in (0, 101):
            with pytest.raises(ClientError) as excinfo:
                call(maxResults=size)
            assert error_of(excinfo)[0] in ("InvalidParameterException", "ClientException"), operation


# -- 7. the AWS CLI


def _aws_cli() -> list[str]:
    """AWS CLI v1 from the test extras, never whatever ``aws`` PATH holds (Debian's v2 may be there)."""
    return [sys.executable, "-m", "awscli"]


def test_aws_cli_round_trip(portside: PortsideProcess, busybox_image: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="anything", AWS_SECRET_ACCESS_KEY="anything",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="",
    )
    base = [*_aws_cli(), "ecs", "--endpoint-url", portside.endpoint, "--region", "us-east-1", "--output", "json"]

    def aws(*args: str) -> Any:
        done = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=90, check=False)
        assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    path = tmp_path / "taskdef.json"
    path.write_text(json.dumps(web_definition(busybox_image, family="feat-cli")))
    registered = aws("register-task-definition", "--cli-input-json", f"file://{path}")["taskDefinition"]
    assert registered["family"] == "feat-cli" and registered["status"] == "ACTIVE"
    reference = f"feat-cli:{registered['revision']}"
    [task] = aws("run-task", "--task-definition", reference, "--count", "1")["tasks"]
    arn = task["taskArn"]
    described = aws("describe-tasks", "--tasks", arn)
    assert [t["taskArn"] for t in described["tasks"]] == [arn] and described["failures"] == []
    assert aws("wait", "tasks-running", "--tasks", arn) is None
    ecs = portside.client()
    [task] = describe(ecs, [arn])
    assert task["lastStatus"] == "RUNNING"
    assert get(f"http://127.0.0.1:{host_port(task)}/cgi-bin/whoami")
    stopped = aws("stop-task", "--task", arn, "--reason", "stopped from the CLI")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    [task] = wait_stopped(ecs, [arn])
    assert task["stoppedReason"] == "stopped from the CLI" and task["stopCode"] == "UserInitiated"


# -- 8. raw HTTP edge cases

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."


def _post(server: PortsideProcess, body: bytes, target: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = target
    reply = signed_post(server.endpoint, body, headers)
    return reply.status, reply.body


@pytest.mark.parametrize(
    ("target", "body", "code", "says"),
    [
        (ECS_TARGET + "LaunchTheRocket", b"{}", "UnknownOperationException", "LaunchTheRocket"),
        ("SomeOtherService.ListClusters", b"{}", "UnknownOperationException", "SomeOtherService.ListClusters"),
        (None, b"{}", "UnknownOperationException", ""),
        ("", b"{}", "UnknownOperationException", ""),
        (ECS_TARGET + "ListClusters", b'{"maxResults": ', "SerializationException", ""),
        (ECS_TARGET + "ListClusters", b"\xff\xfe{}", "SerializationException", ""),
        (ECS_TARGET + "ListClusters", b"[1, 2]", "SerializationException", ""),
        (ECS_TARGET + "ListClusters", b'"text"', "SerializationException", ""),
        (ECS_TARGET + "ListClusters", b"null", "SerializationException", ""),
        (ECS_TARGET + "ListClusters", b"[" * 100_000 + b"]" * 100_000, "SerializationException", ""),
        (ECS_TARGET + "RegisterTaskDefinition",
         b'{"family": "feat-raw", "containerDefinitions": [{"name": "a", "image": "i", "memory": 8, "extra": '
         + b"[" * 800 + b"]" * 800 + b"}]}", "SerializationException", ""),
        (ECS_TARGET + "RunTask", b'{"taskDefinition": "x", "count": "3"}', "SerializationException", "count"),
        (ECS_TARGET + "RunTask", b'{"taskDefinition": ["x"]}', "SerializationException", "taskDefinition"),
        (ECS_TARGET + "RunTask", b'{"taskDefinition": "x", "count": NaN}', "SerializationException", "count"),
        (ECS_TARGET + "RegisterTaskDefinition", b'{"family": "x", "containerDefinitions": {}}',
         "SerializationException", "containerDefinitions"),
        (ECS_TARGET + "RunTask", b"{}", "InvalidParameterException", "taskDefinition"),
        (ECS_TARGET + "RegisterTaskDefinition", b'{"family": "feat-raw"}', "InvalidParameterException",
         "containerDefinitions"),
        (ECS_TARGET + "DescribeTasks", b"{}", "InvalidParameterException", "tasks"),
    ],
    ids=[
        "unknown-action", "other-service", "no-target", "empty-target", "truncated-json", "not-utf8",
        "array-body", "string-body", "null-body", "deeply-nested", "deep-unknown-member", "count-as-string", "list-for-string",
        "nan", "object-for-list", "missing-task-definition", "missing-containers", "missing-tasks",
    ],
)
def test_malformed_requests_are_client_errors(
    portside: PortsideProcess, target: str | None, body: bytes, code: str, says: str
) -> None:
    status, text = _post(portside, body, target)
    assert status == 400, text
    assert "Traceback" not in text
    error = json.loads(text)
    assert error["__type"] == code, text
    assert says in error["message"]


def test_odd_but_well_formed_requests_never_fail_the_server(portside: PortsideProcess) -> None:
    requests = [
        ("RunTask", {"taskDefinition": "arn:aws:ecs:us-east-1:000000000000:task-definition/"}),
        ("RunTask", {"taskDefinition": "feat-nothing:notanumber"}),
        ("RunTask", {"taskDefinition": "feat-nothing", "count": 2**40}),
        ("RunTask", {"taskDefinition": "feat-nothing", "cluster": "arn:aws:ecs:us-east-1:0:cluster/"}),
        ("StopTask", {"task": "arn:aws:ecs:us-east-1:000000000000:task/default/feat-missing"}),
        ("StopTask", {"task": "arn:"}),
        ("DescribeTasks", {"tasks": ["arn:", "", "x" * 2000]}),
        ("DescribeTaskDefinition", {"taskDefinition": "arn:aws:ecs:us-east-1:000000000000:cluster/default"}),
        ("DeregisterTaskDefinition", {"taskDefinition": ":"}),
        ("DeregisterTaskDefinition", {"taskDefinition": "feat-nothing:1"}),
        ("DescribeClusters", {"clusters": ["", "arn:", "a" * 300]}),
        ("DeleteCluster", {"cluster": "feat-never-created"}),
        ("CreateCluster", {"clusterName": "bad name!"}),
        ("ListTasks", {"containerInstance": "feat-nothing", "desiredStatus": "STOPPED"}),
        ("ListTasks", {"nextToken": "eyJvIjogLTF9"}),
        ("DescribeContainerInstances", {"containerInstances": ["", "arn:"]}),
        ("RegisterTaskDefinition", {"family": "feat-raw", "containerDefinitions": [{}]}),
        ("RegisterTaskDefinition", {"family": "feat-raw", "containerDefinitions": [
            {"name": "a", "image": "i", "memory": 8, "portMappings": [{"containerPortRange": "9-1"}]}]}),
        ("RegisterTaskDefinition", {"family": "feat-raw", "containerDefinitions": [
            {"name": "a", "image": "i", "memory": 8, "links": ["b"], "dependsOn": [{"containerName": "a", "condition": "START"}]}]}),
    ]
    for action, params in requests:
        status, text = _post(portside, json.dumps(params).encode(), ECS_TARGET + action)
        assert status == 200 or 400 <= status < 500, f"{action} {params}: {status} {text}"
        assert "Traceback" not in text
        answer = json.loads(text)
        assert status == 200 or answer["__type"] not in ("", "ServerException"), text


def test_oversized_body_is_refused_not_a_server_error(portside: PortsideProcess) -> None:
    body = b'{"family": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    status, text = _post(portside, body, ECS_TARGET + "ListClusters")
    assert 400 <= status < 500, (status, text[:200])
    assert "Traceback" not in text


# -- 9. deregistration and cluster deletion


def test_deregistered_definition_is_inactive_and_cannot_run(ecs: Any, busybox_image: str) -> None:
    first = register(ecs, "feat-dereg", [box(busybox_image, "web")])
    second = register(ecs, "feat-dereg", [box(busybox_image, "web")])
    gone = ecs.deregister_task_definition(taskDefinition=second["taskDefinitionArn"])["taskDefinition"]
    assert gone["status"] == "INACTIVE"
    assert ecs.describe_task_definition(taskDefinition="feat-dereg:2")["taskDefinition"]["status"] == "INACTIVE"
    with pytest.raises(ecs.exceptions.ClientException):
        ecs.run_task(taskDefinition=second["taskDefinitionArn"])
    # The family alone means its latest ACTIVE revision.
    assert ecs.describe_task_definition(taskDefinition="feat-dereg")["taskDefinition"]["revision"] == 1
    active = ecs.list_task_definitions(familyPrefix="feat-dereg")["taskDefinitionArns"]
    inactive = ecs.list_task_definitions(familyPrefix="feat-dereg", status="INACTIVE")["taskDefinitionArns"]
    assert active == [first["taskDefinitionArn"]] and inactive == [second["taskDefinitionArn"]]
    assert ecs.list_task_definitions(familyPrefix="feat-dereg", sort="DESC")["taskDefinitionArns"] == [
        first["taskDefinitionArn"]
    ]
    ecs.deregister_task_definition(taskDefinition="feat-dereg:1")
    assert ecs.list_task_definition_families(familyPrefix="feat-dereg")["families"] == []
    assert ecs.list_task_definition_families(familyPrefix="feat-dereg", status="INACTIVE")["families"] == ["feat-dereg"]


def test_cluster_deletion(ecs: Any) -> None:
    with pytest.raises(ecs.exceptions.ClusterContainsContainerInstancesException):
        ecs.delete_cluster(cluster="default")
    assert ecs.describe_clusters(clusters=["default"])["clusters"][0]["status"] == "ACTIVE"
    created = ecs.create_cluster(clusterName="feat-empty")["cluster"]
    assert created["status"] == "ACTIVE" and created["registeredContainerInstancesCount"] == 0
    deleted = ecs.delete_cluster(cluster="feat-empty")["cluster"]
    assert deleted["status"] == "INACTIVE"
    [described] = ecs.describe_clusters(clusters=["feat-empty"])["clusters"]
    assert described["status"] == "INACTIVE"
    assert created["clusterArn"] not in ecs.list_clusters()["clusterArns"]
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_tasks(cluster="feat-empty")


def test_server_logged_no_tracebacks(portside: PortsideProcess) -> None:
    """Every request above was answered without an internal error, and no agent work failed."""
    log = portside.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]
