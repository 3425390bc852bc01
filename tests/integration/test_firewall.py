"""From another host, copies answer only through a listener: the firewall portside keeps.

A network namespace joined by a veth pair plays a neighbour on this host's link. It
tries every way Docker 20.10 leaves open to a copy: the host port on this host's
address, 127.0.0.1 sent through the link (moby #45610), and the copy's bridge address
routed via this host (moby #41872). Controls show each probe does see an open door.
The no-window test probes every copy from the moment Docker starts it, in a tight
bounded loop, while copies start, while the server is killed and restarted and while a
restart fails; the sync test makes the keeper's iptables fail for real and watches
/metrics until it is retried back in step.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from botocore.config import Config

from portside.agent.host import owner_id
from portside.core import firewall
from portside.core.firewall import chain_name
from tests.integration.conftest import remove_server_containers
from tests.support.netns import OutsideHost
from tests.support.server import PortsideProcess, free_port, free_port_in
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

BRIDGE_SUBNET = "172.17.0.0/16"
PROBER = str(Path(__file__).parent.parent / "support" / "prober.py")
PROBE_MAX_S = 300  # the prober's own bounds; the test stops it long before
PROBE_MAX_COUNT = 600_000


def iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=False)


def chain_of(server: PortsideProcess) -> str:
    return chain_name(owner_id(server.state_dir))


def chain_rules(server: PortsideProcess) -> list[str] | None:
    listing = iptables("-S", chain_of(server))
    return listing.stdout.splitlines() if listing.returncode == 0 else None


def jump_in_place(chain: str) -> bool:
    """DOCKER-USER jumps to ``chain`` once, with at most other servers' portside chains before it."""
    rules = [line for line in iptables("-S", "DOCKER-USER").stdout.splitlines() if line.startswith("-A ")]
    return firewall.jump_in_place(rules, chain)


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


@contextmanager
def control_network(docker_client: Any) -> Iterator[tuple[Any, str]]:
    """A bridge network of the test's own, outside portside's guard, and its subnet; removed afterwards with
    the containers the test put on it."""
    network = docker_client.networks.create(f"pst-fwctl-{os.getpid()}-{random.randint(0, 9999)}", driver="bridge",
                                            labels={"portside-test": "firewall"})
    try:
        network.reload()
        yield network, network.attrs["IPAM"]["Config"][0]["Subnet"]
    finally:
        network.reload()
        for container in network.containers:
            discard(container)
        network.remove()


def metrics(server: PortsideProcess, chain: str) -> dict[str, float]:
    """The portside_firewall_* samples of ``server``'s /metrics, by name."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as response:
        text = response.read().decode()
    labels = re.escape(f'{{chain="{chain}",mode="guard"}}')
    return {m[1]: float(m[2]) for m in re.finditer(rf"^(portside_firewall_\w+){labels} (\S+)$", text, re.M)}


def discard(container: Any) -> None:
    """Remove a container of the test's own, which its network's clean-up may have removed already."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def plain_container(docker_client: Any, image: str, **kwargs: Any) -> Any:
    """A container portside does not own, as a control: what Docker alone leaves reachable."""
    container = docker_client.containers.run(image, detach=True, labels={"portside-test": "firewall"}, **kwargs)
    container.reload()
    return container


def test_default_mode_a_neighbour_reaches_the_listener_and_no_copy(
    tmp_path: Path, outside: OutsideHost, docker_client: Any, busybox_image: str
) -> None:
    server = start_server(tmp_path)
    controls: list[Any] = []
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
        with control_network(docker_client) as (network, subnet):
            outside.route_via_host(subnet)
            controls.append(plain_container(docker_client, busybox_image, network=network.name,
                                            ports={"80/tcp": ("127.0.0.1", None)}))
            address = controls[-1].attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            assert eventually(lambda: outside.http_status(address, 80) == "HTTP/1.1 200 OK", timeout=10, what="control")
            # The guard covers Docker's bridge as a whole: a container portside does not own is closed to routing too.
            controls.append(plain_container(docker_client, busybox_image, ports={"80/tcp": ("127.0.0.1", None)}))
            bystander = controls[-1].attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            assert outside.http_status(bystander, 80, timeout=1) is None
        rules = chain_rules(server)
        assert rules is not None and jump_in_place(chain_of(server))
        assert any("-o docker0 -m conntrack ! --ctstate DNAT" in rule and rule.endswith("-j DROP") for rule in rules)
        assert not any(" -d " in rule for rule in rules)  # nothing waits for a copy's address
    finally:
        for control in controls:
            discard(control)
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
        assert jump_in_place(chain_of(server))
    finally:
        for control in controls:
            control.remove(force=True)
        shut_down(server, docker_client)


def test_the_chain_stays_the_same_through_a_crash_heals_and_goes_with_the_last_copy(
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
        eventually(lambda: _bridge_ip(docker_client, ecs, task["taskArn"]), what="the copy running")
        rules = chain_rules(server)
        assert rules is not None and any(r.startswith(f"-A {chain} -o docker0 ") for r in rules)

        server.kill9()
        assert chain_rules(server) == rules  # fail closed meanwhile
        server.start()
        assert chain_rules(server) == rules and jump_in_place(chain)  # the same content, from the store

        for change in (("-D", "DOCKER-USER", "-j", chain), ("-F", chain)):  # by hand, or dockerd recreating its chains
            done = iptables(*change)
            assert done.returncode == 0, done.stderr
        eventually(lambda: jump_in_place(chain) and chain_rules(server) == rules,
                   timeout=15, what="the keeper restoring the chain")
        found = metrics(server, chain)
        assert found["portside_firewall_chain_in_place"] == 1 and found["portside_firewall_sync_failures_total"] == 0
        assert found["portside_firewall_repairs_total"] >= 1
        assert found["portside_firewall_guarded_bridges"] == 2  # docker0 and portside-awsvpc

        ecs.stop_task(task=task["taskArn"])
        eventually(lambda: ecs.describe_tasks(tasks=[task["taskArn"]])["tasks"][0]["lastStatus"] == "STOPPED",
                   what="the task stopped")
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


def test_no_window_while_copies_start_nor_across_a_kill_a_restart_or_a_failed_start(
    tmp_path: Path, outside: OutsideHost, docker_client: Any, busybox_image: str
) -> None:
    """A neighbour hammers every copy from the moment Docker starts it: not one connection may open."""
    # host ports reachable: guarded by port as well; SQLite named, since a lock on its file fails a start below
    server = start_server(tmp_path, "--publish-ip", "0.0.0.0", "--store", f"sqlite:{tmp_path}/state/portside.db")
    chain = chain_of(server)
    stop_file = tmp_path / "stop-probing"
    prober: subprocess.Popen[str] | None = None
    try:
        with control_network(docker_client) as (network, subnet):
            outside.route_via_host(BRIDGE_SUBNET)
            outside.route_via_host(subnet)
            control = plain_container(docker_client, busybox_image, network=network.name, ports={"80/tcp": ("127.0.0.1", None)})
            control_ip = control.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            prober = outside.spawn(sys.executable, PROBER, owner_id(server.state_dir), outside.host_ip, control_ip, "80",
                                   str(stop_file), str(PROBE_MAX_S), str(PROBE_MAX_COUNT))

            web = Web(server, busybox_image, count=3)  # copies start while probed
            rules = chain_rules(server)
            server.kill9()
            server.start()  # probed across the kill and the restart
            eventually(lambda: len(web.tasks()) == 3 and all(t["lastStatus"] == "RUNNING" for t in web.tasks()),
                       what="copies adopted")

            # A restart that fails after the chain is installed (the store is locked by another process):
            # the copies run on, so the chain must stay as it is.
            lock = sqlite3.connect(str(server.state_dir / "portside.db"), isolation_level=None)
            try:
                lock.execute("BEGIN IMMEDIATE")
                server.kill9()
                server.start(wait=False)
                assert server.wait_exit(60) != 0
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert "database is locked" in server.log()
            assert chain_rules(server) == rules and jump_in_place(chain)

            server.start()
            web.ecs.update_service(service="fw", desiredCount=5)  # more starts, after all that
            eventually(lambda: len(web.tasks()) == 5 and all(t["lastStatus"] == "RUNNING" for t in web.tasks()),
                       what="five copies running")
            time.sleep(2)  # the last copies' first seconds, probed as long as the others' were (bounded by the prober)
            stop_file.touch()
            out, err = prober.communicate(timeout=60)
            assert prober.returncode == 0, err
            summary = json.loads(out.strip().splitlines()[-1])
            (tmp_path / "probe-summary.json").write_text(json.dumps(summary, indent=1))  # for a look after a failure
            assert summary["stopped_by_file"], summary  # it probed through every step above
            assert summary["control_answers"] > 0, summary  # the probing does reach what is not guarded
            copies = [key for key in summary["probes"] if key != "control"]
            assert len(copies) >= 2 * 5, summary  # every copy: bridge address and host port
            assert all(summary["probes"][key] >= 20 for key in copies), summary
            assert summary["breaches"] == [], summary["breaches"][:10]
    finally:
        stop_file.touch()
        if prober is not None and prober.poll() is None:
            try:
                prober.wait(30)
            except subprocess.TimeoutExpired:
                prober.kill()
                prober.wait(10)
        shut_down(server, docker_client)


def test_a_failing_sync_is_retried_counted_in_metrics_and_holds_back_new_copies(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    """iptables-restore goes missing (as during a package upgrade) for this server only, then comes back."""
    tools = tmp_path / "bin"  # the server's whole PATH: the real binaries, through links the test can take away
    tools.mkdir()
    for name in ("iptables", "iptables-restore", "iptables-save", "nft", "ip"):
        real = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if real:
            (tools / name).symlink_to(real)
    restore, away = tools / "iptables-restore", tools / "iptables-restore.away"
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1", env={"PATH": str(tools)})
    server.start()
    chain = chain_of(server)
    try:
        ecs = server.client("ecs")
        td = ecs.register_task_definition(family="fwsync", containerDefinitions=[{
            "name": "web", "image": busybox_image, "memory": 16, "portMappings": [{"containerPort": 80}],
        }])["taskDefinition"]["taskDefinitionArn"]
        first = ecs.run_task(taskDefinition=td)["tasks"][0]["taskArn"]
        eventually(lambda: _bridge_ip(docker_client, ecs, first), what="the first copy running")
        rules = chain_rules(server)
        assert metrics(server, chain)["portside_firewall_sync_failures_total"] == 0

        restore.rename(away)
        try:
            assert iptables("-F", chain).returncode == 0  # dockerd restarting, say: the keeper must rewrite it
            found = eventually(lambda: (m := metrics(server, chain))["portside_firewall_sync_failures_total"] >= 3 and m,
                               timeout=20, what="failed syncs retried and counted")
            assert found["portside_firewall_chain_in_place"] == 0
            # No copy starts while the chain is out of step: the start fails, and says why.
            second = ecs.run_task(taskDefinition=td)["tasks"][0]["taskArn"]
            stopped = eventually(lambda: (t := ecs.describe_tasks(tasks=[second])["tasks"][0])["lastStatus"] == "STOPPED"
                                 and t, what="the start refused")
            assert "CannotStartContainerError" in stopped["stoppedReason"]
            assert f"chain {chain} is not in step" in stopped["stoppedReason"]
            assert "iptables-restore is not installed" in stopped["stoppedReason"]
        finally:
            away.rename(restore)
        eventually(lambda: metrics(server, chain)["portside_firewall_chain_in_place"] == 1 and chain_rules(server) == rules,
                   timeout=20, what="the chain back in step")
        assert metrics(server, chain)["portside_firewall_repairs_total"] >= 1
        assert "(retrying)" in server.log()
    finally:
        if away.exists():
            away.rename(restore)
        shut_down(server, docker_client)
