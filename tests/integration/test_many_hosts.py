"""Many hosts: a control plane in the root namespace, `portside agent` on three namespace hosts with a
Docker Engine each (tests/support/hosts.py), real boto3 against the API and real requests through a
listener. Everything speaks the agent protocol over HTTP with SigV4, as on separate machines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from tests.integration.test_services import Stack
from tests.integration.test_tasks import web_definition
from tests.support.hosts import ROOT_ADDRESS, Cluster, Host
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

KEY, SECRET = "AKIDMANYHOSTS", "many-hosts-secret"
AGENT_KEY, AGENT_SECRET = "AKIDAGENT", "agent-secret"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
WORKERS = [{"type": "memberOf", "expression": "attribute:role == worker"}]


class Agent:
    """`portside agent` in a host's network namespace, against its own engine."""

    def __init__(self, host: Host, server: PortsideProcess, credentials: Path, zone: str) -> None:
        self.host = host
        self.log_path = host.folder / "agent.log"
        args = [
            "nsenter", f"--net=/run/netns/{host.netns}",
            sys.executable, "-m", "portside.cli.main", "agent",
            "--server", server.endpoint, "--credentials", str(credentials), "--profile", "agent",
            "--address", host.address, "--zone", zone, "--attribute", "role=worker",
            "--docker-host", host.docker_url, "--instance-id", host.instance_id,
            "--state-dir", str(host.folder / "agent"), "--lb-source", f"{ROOT_ADDRESS}/32",
            "--log-level", "info",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[agent]\naws_access_key_id = {AGENT_KEY}\naws_secret_access_key = {AGENT_SECRET}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def three_hosts(make_cluster: Any, tmp_path: Path, credentials: Path) -> Iterator[tuple[PortsideProcess, Cluster, list[Agent]]]:
    cluster = make_cluster(3)
    server = PortsideProcess(
        tmp_path / "server", "--credentials", str(credentials), "--min-health-check-interval", "1", api_host=ROOT_ADDRESS
    )
    agents: list[Agent] = []
    try:
        server.start()
        agents = [Agent(h, server, credentials, z) for h, z in zip(cluster.hosts, ZONES, strict=True)]
        yield server, cluster, agents
    finally:
        for agent in agents:
            agent.stop()
        server.stop()


def service_events(ecs: Any) -> list[str]:
    [body] = ecs.describe_services(services=["spread"])["services"]
    return [e["message"] for e in body["events"][:5]]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read().decode()


def test_nine_copies_spread_over_three_hosts_are_served_by_one_listener(
    three_hosts: tuple[PortsideProcess, Cluster, list[Agent]], busybox_image: str
) -> None:
    server, cluster, agents = three_hosts
    ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    # parameter_validation off: botocore refuses health check intervals below 5 s
    elb = server.client("elbv2", aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        config=Config(parameter_validation=False, retries={"max_attempts": 2, "mode": "standard"}))
    by_address = {h.address: h for h in cluster.hosts}

    def workers() -> list[dict[str, Any]] | None:
        arns = ecs.list_container_instances()["containerInstanceArns"]
        described = ecs.describe_container_instances(containerInstances=arns)["containerInstances"]
        found = [i for i in described if {"name": "role", "value": "worker"} in i["attributes"]]
        return found if len(found) == 3 and all(i["agentConnected"] for i in found) else None

    instances = eventually(workers, 60, 0.5, "three agents registered and connected" + "".join(a.log() for a in agents))
    assert {i["ec2InstanceId"] for i in instances} == {h.instance_id for h in cluster.hosts}
    zones = {i["ec2InstanceId"]: next(a["value"] for a in i["attributes"] if a["name"] == "ecs.availability-zone")
             for i in instances}
    assert sorted(zones.values()) == sorted(ZONES)

    td = ecs.register_task_definition(**web_definition(busybox_image, family="spread"))["taskDefinition"]["taskDefinitionArn"]
    stack = Stack(elb, "spread")
    ecs.create_service(
        serviceName="spread", taskDefinition=td, desiredCount=9, loadBalancers=stack.load_balancers(),
        placementConstraints=WORKERS,
        placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}],
    )

    last: list[Any] = []

    def settled() -> list[dict[str, Any]] | None:
        arns = ecs.list_tasks(serviceName="spread")["taskArns"]
        last[:] = [len(arns), service_events(ecs)]
        if len(arns) != 9:
            return None
        tasks = ecs.describe_tasks(tasks=arns)["tasks"]
        last[:] = [[(t["lastStatus"], t.get("stoppedReason"), t["containers"][0].get("reason")) for t in tasks]]
        if any(t["lastStatus"] != "RUNNING" for t in tasks):
            return None
        health = elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
        last[:] = [health]
        if len(health) != 9 or any(d["TargetHealth"]["State"] != "healthy" for d in health):
            return None
        return tasks

    try:
        tasks = eventually(settled, 120, 1.0, "nine healthy copies")
    except AssertionError:
        raise AssertionError(f"{last}\n" + "".join(a.log() for a in agents) + server.log()) from None
    arn_to_id = {i["containerInstanceArn"]: i["ec2InstanceId"] for i in instances}
    per_host = Counter(arn_to_id[t["containerInstanceArn"]] for t in tasks)
    assert sorted(per_host.values()) == [3, 3, 3], per_host

    # Each copy runs on the engine of the host it was placed on, on a dynamic port of that host,
    # and the target group names (that host's instance id, that port).
    targets = {(d["Target"]["Id"], d["Target"]["Port"])
               for d in elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]}
    expected = set()
    for task in tasks:
        instance_id = arn_to_id[task["containerInstanceArn"]]
        host = next(h for h in cluster.hosts if h.instance_id == instance_id)
        port = int(task["containers"][0]["networkBindings"][0]["hostPort"])
        expected.add((instance_id, port))
        assert host.docker().containers.get(task["containers"][0]["runtimeId"]).status == "running"
        reply = host.http_get(host.address, port, "/cgi-bin/whoami")
        assert reply is not None and reply[1].splitlines()[0] == task["containers"][0]["runtimeId"][:12]
    assert targets == expected

    # The listener on the server's host spreads requests over all nine, on all three hosts.
    wanted = {t["containers"][0]["runtimeId"][:12] for t in tasks}
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 30
    for _ in range(200):
        status, body = _get(stack.url + "/cgi-bin/whoami")
        assert status == 200, body
        seen[body.splitlines()[0]] += 1
        if wanted <= set(seen) or time.monotonic() > deadline:
            break
    assert set(seen) == wanted
    assert by_address  # every host reachable by its address (checked per copy above)

    described = ecs.describe_container_instances(containerInstances=[i["containerInstanceArn"] for i in instances])
    for instance in described["containerInstances"]:
        assert instance["runningTasksCount"] == 3
        assert instance["agentConnected"] is True
