"""`portside doctor` against a real server and this host's real iptables and nftables rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.core.firewall_advice import advice
from portside.core.ports import PortRange
from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess, free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker]

RANGE = "40000-40009"


def doctor(*args: str, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if endpoint:
        env["PORTSIDE_ENDPOINT"] = endpoint
    return subprocess.run([sys.executable, "-m", "portside.cli.main", "doctor", *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def report(server: PortsideProcess) -> tuple[int, dict[str, Any]]:
    done = doctor("--json", "--endpoint", server.endpoint)
    return done.returncode, json.loads(done.stdout)


def findings(body: dict[str, Any], check: str) -> list[dict[str, str]]:
    return [f for f in body["findings"] if f["check"] == check]


@pytest.fixture
def server(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path / "state", "--dynamic-port-range", RANGE)
    process.start()
    yield process
    try:
        ecs = process.client()
        for arn in ecs.list_services()["serviceArns"]:
            ecs.delete_service(service=arn, force=True)
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


def run_copy(server: PortsideProcess, image: str) -> dict[str, Any]:
    ecs = server.client()
    td = ecs.register_task_definition(family="doc", containerDefinitions=[{
        "name": "web", "image": image, "memory": 16, "portMappings": [{"containerPort": 80}]}])["taskDefinition"]
    arn = ecs.run_task(taskDefinition=td["taskDefinitionArn"])["tasks"][0]["taskArn"]
    return eventually(lambda: next((t for t in ecs.describe_tasks(tasks=[arn])["tasks"] if t["lastStatus"] == "RUNNING"), None),
                      what="the copy running")


DROP_RANGE = ["OUTPUT", "-p", "tcp", "-m", "conntrack", "--ctorigdstport", RANGE.replace("-", ":"), "-j", "DROP"]


def test_an_injected_iptables_drop_for_the_range_fails_the_doctor_until_it_is_removed(
    server: PortsideProcess, busybox_image: str
) -> None:
    run_copy(server, busybox_image)
    code, body = report(server)
    assert code == 0 and body["ok"], body
    assert findings(body, "firewall.load-balancer")[0]["severity"] == "ok"
    assert findings(body, "firewall.exposed")[0]["severity"] == "ok"
    subprocess.run(["iptables", "-w", "5", "-I", *DROP_RANGE], check=True)
    try:
        code, body = report(server)
        [blocked] = findings(body, "firewall.load-balancer")
        assert code == 1 and not body["ok"] and blocked["severity"] == "error"
        assert f"`-A OUTPUT -p tcp -m conntrack --ctorigdstport {RANGE.replace('-', ':')} -j DROP` (filter OUTPUT #1)" in blocked["summary"]
        assert "iptables -t filter -D OUTPUT 1" in blocked["fix"]
        text = doctor("--endpoint", server.endpoint)
        assert text.returncode == 1 and "ERROR" in text.stdout and "fix: delete it" in text.stdout
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", *DROP_RANGE], check=True)
    assert report(server)[0] == 0


def test_an_injected_nftables_drop_is_named_by_its_handle(server: PortsideProcess, busybox_image: str) -> None:
    run_copy(server, busybox_image)
    table = f"pstest{os.getpid()}"
    script = (f"table inet {table} {{ chain out {{ type filter hook output priority 0; policy accept;\n"
              f"meta l4proto tcp ct original proto-dst {RANGE} drop\n}}\n}}\n")
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        code, body = report(server)
        [blocked] = findings(body, "firewall.load-balancer")
        assert code == 1 and blocked["severity"] == "error" and "nftables rule" in blocked["summary"]
        assert f"nft delete rule inet {table} out handle" in blocked["fix"]
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
    assert report(server)[0] == 0


def test_scaling_past_the_range_and_a_blocking_rule_show_up_in_the_services_events(
    server: PortsideProcess, busybox_image: str
) -> None:
    ecs = server.client()
    td = ecs.register_task_definition(family="docsvc", containerDefinitions=[{
        "name": "web", "image": busybox_image, "memory": 8, "portMappings": [{"containerPort": 80}]}])["taskDefinition"]

    def events(name: str) -> list[str]:
        return [e["message"] for e in ecs.describe_services(services=[name])["services"][0]["events"]]

    ecs.create_service(serviceName="docsvc", taskDefinition=td["taskDefinitionArn"], desiredCount=2)
    time.sleep(1.5)
    assert not [m for m in events("docsvc") if "preflight" in m]
    ecs.update_service(service="docsvc", desiredCount=12)
    message = eventually(lambda: next((m for m in events("docsvc") if "preflight error" in m), None), what="event")
    # The range sits inside the kernel's ephemeral range, so another process's outgoing connection may hold a port.
    assert re.search(r"services need 12 dynamic ports at their desired counts; (10|9|8) of the range's 10 ports", message)
    assert "Fix: widen --dynamic-port-range" in message
    ecs.update_service(service="docsvc", desiredCount=1)

    subprocess.run(["iptables", "-w", "5", "-I", *DROP_RANGE], check=True)
    try:
        ecs.create_service(serviceName="docblocked", taskDefinition=td["taskDefinitionArn"], desiredCount=1)
        # Other findings may come first (a copy started a moment ago is not yet in the guard chain).
        blocked = "(service docblocked) preflight error: iptables rule `-A OUTPUT"
        eventually(lambda: any(m.startswith(blocked) for m in events("docblocked")), what="the blocking rule's event")
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", *DROP_RANGE], check=True)


def test_with_the_firewall_off_doctor_reports_copies_reachable_from_anywhere(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    server = PortsideProcess(tmp_path / "state", "--firewall", "off")
    server.start()
    try:
        run_copy(server, busybox_image)
        code, body = report(server)
        exposed = findings(body, "firewall.exposed")
        assert code == 1 and [f["severity"] for f in exposed] == ["error", "error"]
        assert "moby #45610" in exposed[0]["summary"] and "moby #41872" in exposed[1]["summary"]
        assert findings(body, "firewall.guard")[0]["severity"] == "warning"
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


def test_before_a_server_runs_doctor_checks_the_host_with_the_servers_flags() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = doctor("--json", "--dynamic-port-range", "30000-32767", "--lb-source", "10.9.0.0/16", endpoint=nowhere)
    body = json.loads(done.stdout)
    assert body["source"].startswith("this host, before a server starts")
    assert body["portRange"] == {"start": 30000, "end": 32767, "source": "flag"}
    assert findings(body, "range.ephemeral")[0]["severity"] == "ok"
    assert findings(body, "firewall.guard")[0]["severity"] == "info"
    assert "CidrIp=10.9.0.0/16" in body["rules"]["aws-security-group"]
    assert done.returncode == (0 if body["ok"] else 1)

    text = doctor(endpoint=nowhere)
    assert "WARNING  range.ephemeral" in text.stdout and "--dynamic-port-range 30000-32767" in text.stdout
    assert "[aws-security-group]" in text.stdout and "[nftables]" in text.stdout


def test_doctor_refuses_bad_flags_and_an_endpoint_that_does_not_answer() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    bad = doctor("--lb-source", "ten", endpoint=nowhere)
    assert bad.returncode == 1 and "--lb-source has value 'ten'" in bad.stderr
    silent = doctor("--endpoint", nowhere)
    assert silent.returncode == 1 and f"cannot reach the portside API at {nowhere}" in silent.stderr


def test_the_printed_nftables_and_iptables_rules_are_accepted_by_the_tools() -> None:
    recipes = advice(PortRange(30000, 32767, "flag"), ["10.9.0.0/16"])
    nft = subprocess.run(["nft", "-c", "-f", "-"], input=recipes["nftables"], text=True, capture_output=True, check=False)
    assert nft.returncode == 0, nft.stderr
    section = recipes["ufw"].split("COMMIT")[0] + "COMMIT\n"
    section = "\n".join(line for line in section.splitlines() if not line.startswith("#")) + "\n"
    restore = subprocess.run(["iptables-restore", "--test", "--noflush"], input=section, text=True, capture_output=True, check=False)
    assert restore.returncode == 0, restore.stderr


def test_an_internet_facing_listener_closed_to_clients_is_a_warning(server: PortsideProcess) -> None:
    from botocore.config import Config

    elb = server.client("elbv2", config=Config(parameter_validation=False))
    port = free_port()
    lb = elb.create_load_balancer(Name="docpub", Scheme="internet-facing", Subnets=["subnet-test"])["LoadBalancers"][0]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port, DefaultActions=[{
        "Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    code, body = report(server)
    assert [f["severity"] for f in findings(body, "firewall.listeners")] == ["ok"]
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True)
    try:
        code, body = report(server)
        [closed] = findings(body, "firewall.listeners")
        assert code == 0 and closed["severity"] == "warning"
        assert f"load balancer docpub, HTTP :{port}" in closed["summary"] and "-A INPUT" in closed["summary"]
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", *rule], check=True)
