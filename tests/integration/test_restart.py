"""kill -9 of the server at every step of a 10-copy RunTask loses and duplicates nothing."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import remove_server_containers
from tests.integration.test_tasks import web_definition
from tests.support.server import PortsideProcess

pytestmark = pytest.mark.docker

COPIES = 10
# (crash point, how many times it is passed before the crash): every step of the RunTask path.
CRASH_POINTS = [
    ("after-commit", 1),
    ("after-create", 1),
    ("after-create", 5),
    ("after-create", 10),
    ("after-start", 1),
    ("after-start", 6),
    ("after-running", 3),
    ("after-running", 10),
]


def _owner_containers(docker_client: Any, server: PortsideProcess) -> list[Any]:
    from portside.agent.driver import LABEL_OWNER
    from portside.agent.host import owner_id

    return docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner_id(server.state_dir)}"})


@pytest.mark.parametrize(("point", "nth"), CRASH_POINTS, ids=[f"{p}-{n}" for p, n in CRASH_POINTS])
def test_kill9_at_every_step_of_run_task(
    tmp_path: Path, docker_client: Any, busybox_image: str, point: str, nth: int
) -> None:
    server = PortsideProcess(tmp_path / "state")
    server.start(env={"PORTSIDE_CRASH_AT": f"{point}:{nth}"})
    try:
        ecs = server.client()
        arn = ecs.register_task_definition(**web_definition(busybox_image, family="crashy"))["taskDefinition"][
            "taskDefinitionArn"
        ]
        try:
            ecs.run_task(taskDefinition=arn, count=COPIES, clientToken="crash-test")
        except Exception:
            pass  # the server died under the request; the client retries below with the same token
        assert server.wait_exit(60) == 137, server.log()

        server.start()  # no crash point this time
        ecs = server.client()
        result = ecs.run_task(taskDefinition=arn, count=COPIES, clientToken="crash-test")
        arns = [t["taskArn"] for t in result["tasks"]]
        assert len(arns) == COPIES, result
        ecs.get_waiter("tasks_running").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert sorted(ecs.list_tasks(family="crashy")["taskArns"]) == sorted(arns)
        tasks = ecs.describe_tasks(tasks=arns)["tasks"]
        ports = [t["containers"][0]["networkBindings"][0]["hostPort"] for t in tasks]
        assert len(set(ports)) == COPIES
        containers = _owner_containers(docker_client, server)
        assert len(containers) == COPIES, [c.name for c in containers]
        assert sorted(c.labels["com.amazonaws.ecs.task-arn"] for c in containers) == sorted(arns)
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/whoami", timeout=5) as reply:
                assert reply.status == 200
    finally:
        server.kill9()
        remove_server_containers(docker_client, server)


def test_restart_adopts_running_tasks_and_stops_vanished_ones(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    server = PortsideProcess(tmp_path / "state")
    server.start()
    try:
        ecs = server.client()
        arn = ecs.register_task_definition(**web_definition(busybox_image, family="adopt"))["taskDefinition"]["taskDefinitionArn"]
        arns = [t["taskArn"] for t in ecs.run_task(taskDefinition=arn, count=3)["tasks"]]
        ecs.get_waiter("tasks_running").wait(tasks=arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        before = {t["taskArn"]: t for t in ecs.describe_tasks(tasks=arns)["tasks"]}
        server.kill9()
        victim = before[arns[0]]["containers"][0]["runtimeId"]
        docker_client.containers.get(victim).remove(force=True)
        server.start()
        ecs = server.client()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = {t["taskArn"]: t for t in ecs.describe_tasks(tasks=arns)["tasks"]}
            if after[arns[0]]["lastStatus"] == "STOPPED":
                break
            time.sleep(0.3)
        assert after[arns[0]]["lastStatus"] == "STOPPED"
        assert after[arns[0]]["stopCode"] == "EssentialContainerExited"
        for arn_ in arns[1:]:
            assert after[arn_]["lastStatus"] == "RUNNING"
            assert after[arn_]["containers"][0]["networkBindings"] == before[arn_]["containers"][0]["networkBindings"]
        # A new copy never gets a port a live copy holds, and not the freed one (quarantine).
        [new] = ecs.run_task(taskDefinition=arn)["tasks"]
        ecs.get_waiter("tasks_running").wait(tasks=[new["taskArn"]], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        new_port = ecs.describe_tasks(tasks=[new["taskArn"]])["tasks"][0]["containers"][0]["networkBindings"][0]["hostPort"]
        old_ports = {t["containers"][0]["networkBindings"][0]["hostPort"] for t in before.values()}
        assert new_port not in old_ports
        assert new_port > max(old_ports)  # round robin continues after the last assigned port
    finally:
        server.kill9()
        remove_server_containers(docker_client, server)


def test_orphan_containers_are_removed_after_grace(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    from portside.agent.driver import LABEL_MANAGED, LABEL_OWNER, LABEL_TASK_ARN
    from portside.agent.host import owner_id

    server = PortsideProcess(tmp_path / "state", "--orphan-grace", "1")
    server.start()
    try:
        labels = {
            LABEL_MANAGED: "true",
            LABEL_OWNER: owner_id(server.state_dir),
            LABEL_TASK_ARN: "arn:aws:ecs:us-east-1:000000000000:task/default/" + "f" * 32,
        }
        orphan = docker_client.containers.run(busybox_image, detach=True, labels=labels)
        other = docker_client.containers.run(busybox_image, detach=True, labels={**labels, LABEL_OWNER: "someone-else"})
        deadline = time.monotonic() + 20
        gone = False
        while time.monotonic() < deadline and not gone:
            gone = not docker_client.containers.list(all=True, filters={"id": orphan.id})
            time.sleep(0.5)
        assert gone, "orphan container was not removed"
        assert docker_client.containers.list(all=True, filters={"id": other.id}), "another server's container was touched"
        other.remove(force=True)
    finally:
        server.kill9()
        remove_server_containers(docker_client, server)
