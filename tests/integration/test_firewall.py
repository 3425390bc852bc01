"""From another host, copies answer only through a listener: the firewall portside keeps.

A network namespace joined by a veth pair plays a neighbour on this host's link. It
tries every way Docker 20.10 leaves open to a copy: the host port on this host's
address, 127.0.0.1 sent through the link (moby #45610), and the copy's bridge address
routed via this host (moby #41872). Controls show each probe does see an open door.
"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from portside.agent.host import owner_id
from portside.core.firewall import chain_name
from tests.integration.conftest import remove_server_containers
from tests.support.netns import OutsideHost
from tests.support.server import PortsideProcess, free_port, free_port_in
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

BRIDGE_SUBNET = "172.17.0.0/16"


def iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=False)


def chain_of(server: PortsideProcess) -> str:
    return chain_name(owner_id(server.state_dir))


def chain_rules(server: PortsideProcess) -> list[str] | None:
    listing = iptables("-S", chain_of(server))
    return listing.stdout.splitlines() if listing.returncode == 0 else None


def jumps_to(chain: str) -> list[int]:
    """Positions (1-based) of DOCKER-USER's jumps to ``chain``."""
    rules = [line for line in iptables("-S", "DOCKER-USER").stdout.splitlines() if line.startswith("-A ")]
    return [i for i, line in enumerate(rules, 1) if line.strip() == f"-A DOCKER-USER -j {chain}"]


class Web:
    """An internet-facing load balancer (listener on every address) in front of a service."""

    def __init__(self, server: PortsideProcess, image: str, count: int = 2) -> None:
        self.ecs = server.client("ecs")
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        self.port = free_port()
        lb = elb.create_load_balancer(Name="fw", Scheme="internet-facing", Subnets=["subnet-test"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name="fw", Protocol="HTTP", Port=80, VpcId="vpc-test", HealthCheckIntervalSeconds=1,
            HealthyThresholdCount=2, HealthCheckPath="/",
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=self.port,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        td = self.ecs.register_task_definition(family="fw", containerDefinitions=[{
            "name": "web", "image": image, "memory": 16, "portMappings": [{"containerPort": 80, "hostPort": 0}],
        }])["taskDefinition"]["taskDefinitionArn"]
        self.ecs.create_service(serviceName="fw", taskDefinition=td, desiredCount=count,
                                loadBalancers=[{"targetGroupArn": tg, "containerName": "web", "containerPort": 80}])
        eventually(lambda: len(self.tasks()) == count and all(t["lastStatus"] == "RUNNING" for t in self.tasks()),
                   what="service copies running")
        eventually(lambda: all(h["TargetHealth"]["State"] == "healthy" for h in elb.describe_target_health(
            TargetGroupArn=tg)["TargetHealthDescriptions"]) and len(elb.describe_target_health(
                TargetGroupArn=tg)["TargetHealthDescriptions"]) == count, what="healthy targets")

    def tasks(self) -> list[dict[str, Any]]:
        arns = self.ecs.list_tasks(serviceName="fw")["taskArns"]
        return self.ecs.describe_tasks(tasks=arns)["tasks"] if arns else []

    def copies(self, docker_client: Any) -> list[tuple[int, str]]:
        """(host port, bridge address) of every running copy."""
        found = []
        for task in self.tasks():
            container = task["containers"][0]
            port = container["networkBindings"][0]["hostPort"]
            inspected = docker_client.api.inspect_container(container["runtimeId"])
            found.append((port, inspected["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]))
        return found


def start_server(tmp_path: Path, *args: str) -> PortsideProcess:
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1", *args)
    server.start()
    return server


def shut_down(server: PortsideProcess, docker_client: Any) -> None:
    try:
        ecs = server.client("ecs")
        for arn in ecs.list_services()["serviceArns"]:
            ecs.delete_service(service=arn, force=True)
        eventually(lambda: not ecs.list_tasks()["taskArns"], what="tasks stopped")
    except Exception:  # noqa: BLE001 - best effort; the containers are removed below either way
        pass
    server.stop()
    remove_server_containers(docker_client, server)


def plain_container(docker_client: Any, image: str, **kwargs: Any) -> Any:
    """A container portside does not own, as a control: what Docker alone leaves reachable."""
    container = docker_client.containers.run(image, detach=True, labels={"portside-test": "firewall"}, **kwargs)
    container.reload()
    return container


def test_default_mode_a_neighbour_reaches_the_listener_and_no_copy(
    tmp_path: Path, outside: OutsideHost, docker_client: Any, busybox_image: str
) -> None:
    server = start_server(tmp_path)
    control = None
    try:
        web = Web(server, busybox_image)
        copies = web.copies(docker_client)
        outside.route_via_host(BRIDGE_SUBNET)
        assert outside.http_status(outside.host_ip, web.port) == "HTTP/1.1 200 OK"
        for host_port, address in copies:
            assert outside.http_status(outside.host_ip, host_port) is None  # published on 127.0.0.1 only
            assert outside.raw_syn("127.0.0.1", host_port) == "NONE"  # moby #45610
            assert outside.http_status(address, 80, timeout=1) is None  # moby #41872
        # Controls: each probe sees an open door where there is one.
        assert outside.raw_syn(outside.host_ip, web.port) == "SYNACK"
        control = plain_container(docker_client, busybox_image, ports={"80/tcp": ("127.0.0.1", None)})
        address = control.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert eventually(lambda: outside.http_status(address, 80) == "HTTP/1.1 200 OK", timeout=10, what="control")
        rules = chain_rules(server)
        assert rules is not None and jumps_to(chain_of(server)) == [1]
        assert all(any(f"-d {ip}/32" in rule and rule.endswith("-j DROP") for rule in rules) for _, ip in copies)
    finally:
        if control is not None:
            control.remove(force=True)
        shut_down(server, docker_client)


def test_managed_mode_publishing_on_every_address_admits_only_load_balancer_sources(
    tmp_path: Path, outside: OutsideHost, docker_client: Any, busybox_image: str
) -> None:
    server = start_server(tmp_path, "--firewall", "managed", "--publish-ip", "0.0.0.0", "--dynamic-port-range", "40000-44999")
    controls = []
    try:
        web = Web(server, busybox_image)
        copies = web.copies(docker_client)
        outside.route_via_host(BRIDGE_SUBNET)
        assert outside.http_status(outside.host_ip, web.port) == "HTTP/1.1 200 OK"
        for host_port, address in copies:
            assert 40000 <= host_port <= 44999
            assert outside.http_status(outside.host_ip, host_port) is None
            assert outside.http_status(address, 80, timeout=1) is None
        # The range itself is closed to non-load-balancers, whoever's container is on it; other ports are not.
        inside, beyond = free_port_in(44000, 44999), free_port_in(46000, 46999)
        controls.append(plain_container(docker_client, busybox_image, ports={"80/tcp": ("0.0.0.0", inside)}))
        controls.append(plain_container(docker_client, busybox_image, ports={"80/tcp": ("0.0.0.0", beyond)}))
        assert eventually(lambda: outside.http_status(outside.host_ip, beyond) == "HTTP/1.1 200 OK", timeout=10,
                          what="control published beyond the range")
        assert outside.http_status(outside.host_ip, inside) is None

        # Rules follow the configuration: name the neighbour a load balancer source and it gets in.
        server.stop()
        server.extra_args += ["--lb-source", f"{outside.outside_ip}/32"]
        server.start()
        host_port, address = copies[0]
        assert eventually(lambda: outside.http_status(outside.host_ip, host_port) == "HTTP/1.1 200 OK",
                          timeout=10, what="the copy answering its load balancer source")
        assert outside.http_status(address, 80) == "HTTP/1.1 200 OK"
        assert jumps_to(chain_of(server)) == [1]
    finally:
        for control in controls:
            control.remove(force=True)
        shut_down(server, docker_client)


def test_rules_stay_through_a_crash_follow_copies_heal_and_go_with_the_last_copy(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    server = start_server(tmp_path)
    chain = chain_of(server)
    try:
        ecs = server.client("ecs")
        td = ecs.register_task_definition(family="fwc", containerDefinitions=[{
            "name": "web", "image": busybox_image, "memory": 16, "portMappings": [{"containerPort": 80}],
        }])["taskDefinition"]["taskDefinitionArn"]
        task = ecs.run_task(taskDefinition=td)["tasks"][0]
        address = eventually(lambda: _bridge_ip(docker_client, ecs, task["taskArn"]), what="the copy's address")
        guarded = f"-A {chain} -d {address}/32"
        eventually(lambda: any(rule.startswith(guarded) for rule in chain_rules(server) or []), what="guard rule")

        server.kill9()
        assert any(rule.startswith(guarded) for rule in chain_rules(server) or [])  # fail closed meanwhile
        server.start()
        assert jumps_to(chain) == [1]
        # The restarted keeper adds the adopted copy's address: let it finish before breaking its work.
        eventually(lambda: any(rule.startswith(guarded) for rule in chain_rules(server) or []), what="guard rule again")

        for change in (("-D", "DOCKER-USER", "-j", chain), ("-F", chain)):  # by hand, or dockerd recreating its chains
            done = iptables(*change)
            assert done.returncode == 0, done.stderr
        eventually(lambda: jumps_to(chain) == [1] and any(r.startswith(guarded) for r in chain_rules(server) or []),
                   timeout=15, what="the keeper restoring the chain")
        with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        labels = f'{{chain="{chain}",mode="guard"}}'
        assert f"portside_firewall_chain_in_place{labels} 1" in metrics
        assert f"portside_firewall_guarded_addresses{labels} 1" in metrics
        assert f"portside_firewall_repairs_total{labels} 1" in metrics

        ecs.stop_task(task=task["taskArn"])
        eventually(lambda: not any(r.startswith(guarded) for r in chain_rules(server) or []), what="rule removed")
        server.stop()
        assert chain_rules(server) is None and jumps_to(chain) == []
    finally:
        shut_down(server, docker_client)


def _bridge_ip(docker_client: Any, ecs: Any, arn: str) -> str | None:
    task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    runtime = task["containers"][0].get("runtimeId")
    if task["lastStatus"] != "RUNNING" or not runtime:
        return None
    return str(docker_client.api.inspect_container(runtime)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"])


def test_firewall_off_installs_nothing_and_takes_out_what_an_earlier_run_left(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    server = start_server(tmp_path)
    try:
        ecs = server.client("ecs")
        td = ecs.register_task_definition(family="fwoff", containerDefinitions=[{
            "name": "web", "image": busybox_image, "memory": 16, "portMappings": [{"containerPort": 80}],
        }])["taskDefinition"]["taskDefinitionArn"]
        arn = ecs.run_task(taskDefinition=td)["tasks"][0]["taskArn"]
        eventually(lambda: _bridge_ip(docker_client, ecs, arn), what="the copy running")
        server.stop()
        assert chain_rules(server) is not None  # a copy still runs: its guard stays
        server.extra_args += ["--firewall", "off"]
        server.start()
        assert chain_rules(server) is None and jumps_to(chain_of(server)) == []
        assert "removed chain" in server.log()
    finally:
        shut_down(server, docker_client)


def test_a_host_where_the_guard_cannot_be_installed_refuses_to_start(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "iptables").write_text("#!/bin/sh\necho \"iptables: No chain/target/match by that name.\" >&2\nexit 1\n")
    (fake_bin / "iptables").chmod(0o755)
    server = PortsideProcess(tmp_path / "state", env={"PATH": f"{fake_bin}:/usr/sbin:/usr/bin:/sbin:/bin"})
    with pytest.raises(RuntimeError, match="DOCKER-USER chain is missing.*--firewall off"):
        server.start()
