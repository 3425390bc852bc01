"""Many hosts: a control plane in the root namespace, `portside agent` on three namespace hosts with a
Docker Engine each (tests/support/hosts.py), real boto3 against the API and real requests through a
listener. Everything speaks the agent protocol over HTTP with SigV4, as on separate machines.

Copies run only on the three hosts (a memberOf constraint on the agents' custom attribute), so what
the test asserts about hosts is about remote agents; the server's own agent runs beside them."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.error
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
SPREAD = [{"type": "spread", "field": "attribute:ecs.availability-zone"}]
TTL_S, GRACE_S = 3, 4


class Agent:
    """`portside agent` in a host's network namespace, against its own engine."""

    def __init__(self, host: Host, servers: str, credentials: Path, zone: str) -> None:
        """``servers``: the control plane's URL(s), comma-separated, as ``--server`` takes them."""
        self.host, self.servers, self.credentials, self.zone = host, servers, credentials, zone
        self.log_path = host.folder / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        args = [
            "nsenter", f"--net=/run/netns/{self.host.netns}",
            sys.executable, "-m", "portside.cli.main", "agent",
            "--server", self.servers, "--credentials", str(self.credentials), "--profile", "agent",
            "--address", self.host.address, "--zone", self.zone, "--attribute", "role=worker",
            "--docker-host", self.host.docker_url, "--instance-id", self.host.instance_id,
            "--state-dir", str(self.host.folder / "agent"),
            # No --lb-source: the control plane tells each agent which load balancers to admit.
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        try:
            return f"--- agent {self.host.name}\n" + self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class ManyHosts:
    def __init__(self, server: PortsideProcess, cluster: Cluster, agents: list[Agent]) -> None:
        self.server, self.cluster, self.agents = server, cluster, agents
        self.ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        # parameter_validation off: botocore refuses health check intervals below 5 s
        self.elb = server.client("elbv2", aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                 config=Config(parameter_validation=False, retries={"max_attempts": 2, "mode": "standard"}))
        self.instances = eventually(self._workers, 60, 0.5, "three agents registered and connected")
        self.instance_of = {i["containerInstanceArn"]: i["ec2InstanceId"] for i in self.instances}

    def _workers(self) -> list[dict[str, Any]] | None:
        arns = self.ecs.list_container_instances()["containerInstanceArns"]
        described = self.ecs.describe_container_instances(containerInstances=arns)["containerInstances"]
        found = [i for i in described if {"name": "role", "value": "worker"} in i["attributes"]]
        return found if len(found) == 3 and all(i["agentConnected"] for i in found) else None

    def host_of(self, task: dict[str, Any]) -> Host:
        instance_id = self.instance_of[task["containerInstanceArn"]]
        return next(h for h in self.cluster.hosts if h.instance_id == instance_id)

    def diagnostics(self) -> str:
        engines = {}
        for host in self.cluster.hosts:
            try:
                engines[host.name] = [(c.name[-12:], c.status) for c in host.docker().containers.list(all=True)]
            except Exception as exc:  # noqa: BLE001 - a killed engine
                engines[host.name] = [str(exc)[:80]]
        return f"{engines}\n" + "".join(a.log() for a in self.agents) + self.server.log()[-3000:]

    def service(self, name: str, image: str, count: int) -> Stack:
        td = self.ecs.register_task_definition(**web_definition(image, family=name))["taskDefinition"]["taskDefinitionArn"]
        stack = Stack(self.elb, name)
        self.ecs.create_service(
            serviceName=name, taskDefinition=td, desiredCount=count, loadBalancers=stack.load_balancers(),
            placementConstraints=WORKERS, placementStrategy=SPREAD,
            deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200},
        )
        return stack

    def settled(self, name: str, stack: Stack, count: int) -> list[dict[str, Any]] | None:
        """The service's tasks once it runs exactly ``count`` copies, each the one healthy target of its
        (instance, port), and no other target."""
        arns = self.ecs.list_tasks(serviceName=name)["taskArns"]
        if len(arns) != count:
            return None
        tasks = self.ecs.describe_tasks(tasks=arns)["tasks"]
        if any(t["lastStatus"] != "RUNNING" for t in tasks):
            return None
        health = self.elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
        targets = {(d["Target"]["Id"], d["Target"]["Port"]): d["TargetHealth"]["State"] for d in health}
        wanted = {(self.instance_of[t["containerInstanceArn"]], port(t)): "healthy" for t in tasks}
        return tasks if targets == wanted else None

    def wait_settled(self, name: str, stack: Stack, count: int, timeout: float = 120, avoid: Host | None = None) -> list[dict[str, Any]]:
        """``settled``, and with no copy on ``avoid`` when given."""
        def check() -> list[dict[str, Any]] | None:
            tasks = self.settled(name, stack, count)
            return tasks if tasks is not None and all(self.host_of(t) is not avoid for t in tasks) else None

        try:
            return eventually(check, timeout, 1.0, f"{name}: {count} healthy copies")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None


def port(task: dict[str, Any]) -> int:
    return int(task["containers"][0]["networkBindings"][0]["hostPort"])


def runtime(task: dict[str, Any]) -> str:
    return str(task["containers"][0]["runtimeId"][:12])


def whoami(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + "/cgi-bin/whoami", timeout=5) as reply:
            return reply.status, reply.read().decode().splitlines()[0]
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def through(node_host: Host, port: int, wanted: set[str]) -> set[str] | None:
    """Every copy in ``wanted`` answered through the node at ``node_host``'s address (a client in the
    root namespace), within a bounded number of requests; None at the first failure."""
    seen = set()
    for _ in range(40):
        status, body = whoami(f"http://{node_host.address}:{port}")
        if status != 200:
            return None
        seen.add(body)
        if seen == wanted:
            return seen
    return None


class Client:
    """Sequential GETs through the listener in a thread, bounded in count and time: what a user sees."""

    def __init__(self, url: str, max_requests: int = 20_000, max_seconds: float = 150) -> None:
        self.url, self.max_requests, self.max_seconds = url, max_requests, max_seconds
        self.results: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and len(self.results) < self.max_requests and time.monotonic() < deadline:
            self.results.append(whoami(self.url)[0])
            time.sleep(0.02)

    def stop(self) -> Counter[int]:
        self._stop.set()
        self._thread.join(20)
        return Counter(self.results)


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
def hosts(make_cluster: Any, tmp_path: Path, credentials: Path) -> Iterator[ManyHosts]:
    cluster = make_cluster(3)
    server = PortsideProcess(
        tmp_path / "server", "--credentials", str(credentials), "--min-health-check-interval", "1",
        "--agent-ttl", str(TTL_S), "--agent-grace", str(GRACE_S), api_host=ROOT_ADDRESS,
    )
    agents: list[Agent] = []
    try:
        server.start()
        agents = [Agent(h, server.endpoint, credentials, z) for h, z in zip(cluster.hosts, ZONES, strict=True)]
        yield ManyHosts(server, cluster, agents)
    finally:
        for agent in agents:
            agent.stop()
        server.stop()


def test_nine_copies_spread_over_three_hosts_are_served_by_one_listener(hosts: ManyHosts, busybox_image: str) -> None:
    zones = {i["ec2InstanceId"]: next(a["value"] for a in i["attributes"] if a["name"] == "ecs.availability-zone")
             for i in hosts.instances}
    assert sorted(zones.values()) == sorted(ZONES)
    assert set(zones) == {h.instance_id for h in hosts.cluster.hosts}

    stack = hosts.service("spread", busybox_image, 9)
    tasks = hosts.wait_settled("spread", stack, 9)
    per_host = Counter(hosts.host_of(t).name for t in tasks)
    assert sorted(per_host.values()) == [3, 3, 3], per_host

    # Each copy runs on the engine of the host it was placed on, published on that host's address.
    for task in tasks:
        host = hosts.host_of(task)
        assert host.docker().containers.get(task["containers"][0]["runtimeId"]).status == "running"
        reply = host.http_get(host.address, port(task), "/cgi-bin/whoami")
        assert reply is not None and reply[1].splitlines()[0] == runtime(task)

    # The firewall on each host admits the load balancer the control plane named (the server, here)
    # and drops everyone else: another host cannot reach a copy's host port.
    task = tasks[0]
    home = hosts.host_of(task)
    neighbour = next(h for h in hosts.cluster.hosts if h is not home)
    assert neighbour.http_get(home.address, port(task), "/cgi-bin/whoami", timeout=1.0) is None

    # The listener on the server's host spreads requests over all nine, on all three hosts.
    wanted = {runtime(t) for t in tasks}
    seen: Counter[str] = Counter()
    for _ in range(300):
        status, body = whoami(stack.url)
        assert status == 200, body
        seen[body] += 1
        if wanted <= set(seen):
            break
    assert set(seen) == wanted

    described = hosts.ecs.describe_container_instances(containerInstances=list(hosts.instance_of))
    for instance in described["containerInstances"]:
        assert instance["runningTasksCount"] == 3 and instance["agentConnected"] is True
        cpu = next(r for r in instance["remainingResources"] if r["name"] == "MEMORY")["integerValue"]
        registered = next(r for r in instance["registeredResources"] if r["name"] == "MEMORY")["integerValue"]
        assert registered - cpu == 3 * 32  # three copies' memory reserved on each host


def test_a_lost_host_is_replaced_on_the_others_and_its_targets_go(hosts: ManyHosts, busybox_image: str) -> None:
    stack = hosts.service("lost", busybox_image, 6)
    tasks = hosts.wait_settled("lost", stack, 6)
    victim = hosts.host_of(tasks[0])
    doomed = {t["taskArn"] for t in tasks if hosts.host_of(t) is victim}
    assert len(doomed) == 2
    client = Client(stack.url)
    agent = next(a for a in hosts.agents if a.host is victim)
    lost_at = time.monotonic()
    agent.stop(signal.SIGKILL)
    victim.kill_engine()

    def disconnected() -> bool:
        [body] = hosts.ecs.describe_container_instances(
            containerInstances=[a for a, i in hosts.instance_of.items() if i == victim.instance_id])["containerInstances"]
        return body["agentConnected"] is False

    eventually(disconnected, TTL_S + 5, 0.5, "the lost host's agentConnected false")
    after = hosts.wait_settled("lost", stack, 6, timeout=TTL_S + GRACE_S + 90, avoid=victim)
    moved = time.monotonic() - lost_at
    codes = client.stop()
    assert all(hosts.host_of(t) is not victim for t in after)
    assert not doomed & {t["taskArn"] for t in after}
    stopped = hosts.ecs.describe_tasks(tasks=sorted(doomed))["tasks"]
    assert {t["lastStatus"] for t in stopped} == {"STOPPED"}
    assert all(f"instance {victim.instance_id}" in t["stoppedReason"] for t in stopped)
    # The dead copies stayed routed until their health checks failed: a bounded client saw at most
    # that many failures (retries on: GETs are retried on another target).
    print(f"lost host: all traffic moved in {moved:.1f} s; client saw {dict(codes)}")
    assert codes[200] > 0 and sum(n for c, n in codes.items() if c != 200) <= 5, codes


def test_a_partitioned_host_keeps_serving_and_settles_without_duplicates_when_healed(
    hosts: ManyHosts, busybox_image: str
) -> None:
    stack = hosts.service("parted", busybox_image, 3)
    tasks = hosts.wait_settled("parted", stack, 3)
    victim = hosts.host_of(tasks[0])
    [copy] = [t for t in tasks if hosts.host_of(t) is victim]
    victim.partition()
    try:
        after = hosts.wait_settled("parted", stack, 3, timeout=TTL_S + GRACE_S + 90, avoid=victim)  # replaced elsewhere
        assert all(hosts.host_of(t) is not victim for t in after)
        # Cut off from the control plane, the host still runs its copy (it may only have lost its link).
        container = victim.docker().containers.get(copy["containers"][0]["runtimeId"])
        assert container.status == "running"
        assert victim.http_get(victim.address, port(copy), "/cgi-bin/whoami") is not None
    finally:
        victim.heal()
    # Back on the network, the agent learns its copy was replaced and stops it: three copies, no more.
    eventually(lambda: victim.docker().containers.get(copy["containers"][0]["runtimeId"]).status != "running",
               TTL_S + 30, 0.5, "the replaced copy stopped by its returning agent")
    final = hosts.wait_settled("parted", stack, 3)
    assert {t["taskArn"] for t in final} == {t["taskArn"] for t in after}
    [body] = hosts.ecs.describe_container_instances(
        containerInstances=[a for a, i in hosts.instance_of.items() if i == victim.instance_id])["containerInstances"]
    assert body["agentConnected"] is True and body["runningTasksCount"] == 0


def test_an_agent_restart_adopts_its_copies_without_restarting_them(hosts: ManyHosts, busybox_image: str) -> None:
    stack = hosts.service("adopt", busybox_image, 3)
    tasks = hosts.wait_settled("adopt", stack, 3)
    started = {}
    for task in tasks:
        attrs = hosts.host_of(task).docker().containers.get(task["containers"][0]["runtimeId"]).attrs
        started[task["taskArn"]] = (attrs["State"]["StartedAt"], attrs["RestartCount"])
    for agent in hosts.agents:
        agent.stop()
    for agent in hosts.agents:
        agent.start()
    time.sleep(TTL_S)  # they registered again and relisted their assignments
    again = hosts.wait_settled("adopt", stack, 3)
    assert {t["taskArn"] for t in again} == set(started)
    for task in again:
        attrs = hosts.host_of(task).docker().containers.get(task["containers"][0]["runtimeId"]).attrs
        assert (attrs["State"]["StartedAt"], attrs["RestartCount"]) == started[task["taskArn"]]
    assert all(whoami(stack.url)[0] == 200 for _ in range(10))


def test_draining_a_host_under_load_moves_its_copies_without_a_failed_request(hosts: ManyHosts, busybox_image: str) -> None:
    stack = hosts.service("drain", busybox_image, 6)
    tasks = hosts.wait_settled("drain", stack, 6)
    victim = hosts.host_of(tasks[0])
    arn = next(a for a, i in hosts.instance_of.items() if i == victim.instance_id)
    leaving = {t["taskArn"] for t in tasks if hosts.host_of(t) is victim}
    client = Client(stack.url)
    time.sleep(1)
    [drained] = hosts.ecs.update_container_instances_state(containerInstances=[arn], status="DRAINING")["containerInstances"]
    assert drained["status"] == "DRAINING"
    after = hosts.wait_settled("drain", stack, 6, avoid=victim)
    time.sleep(1)
    codes = client.stop()
    assert codes[200] > 20 and set(codes) == {200}, codes  # replacements first, the old copies drained
    assert not leaving & {t["taskArn"] for t in after}
    stopped = hosts.ecs.describe_tasks(tasks=sorted(leaving))["tasks"]
    assert {t["lastStatus"] for t in stopped} == {"STOPPED"}
    assert {t["stopCode"] for t in stopped} == {"ServiceSchedulerInitiated"}
    [body] = hosts.ecs.describe_container_instances(containerInstances=[arn])["containerInstances"]
    assert body["status"] == "DRAINING" and body["runningTasksCount"] == 0

    # Deregistered, the host is gone from the cluster; its agent is refused from then on.
    hosts.ecs.deregister_container_instance(containerInstance=arn)
    assert arn not in hosts.ecs.list_container_instances()["containerInstanceArns"]
    agent = next(a for a in hosts.agents if a.host is victim)
    eventually(lambda: "was deregistered" in agent.log(), 30, 0.5, "the agent told it was deregistered")
    assert len(hosts.ecs.list_tasks(serviceName="drain")["taskArns"]) == 6


def test_a_load_balancer_node_on_a_host_of_its_own_keeps_serving_while_the_control_plane_is_down(
    hosts: ManyHosts, busybox_image: str, credentials: Path
) -> None:
    stack = hosts.service("node", busybox_image, 3)
    tasks = hosts.wait_settled("node", stack, 3)
    node_host = hosts.cluster.hosts[2]
    log_path = node_host.folder / "lb.log"
    with open(log_path, "ab") as log:
        node = subprocess.Popen([
            "nsenter", f"--net=/run/netns/{node_host.netns}", sys.executable, "-m", "portside.cli.main", "lb",
            "--server", hosts.server.endpoint, "--credentials", str(credentials), "--profile", "agent",
            "--bind-address", node_host.address, "--address", node_host.address,
            "--state-dir", str(node_host.folder / "lb"),
        ], stdout=log, stderr=subprocess.STDOUT)
    try:
        wanted = {runtime(t) for t in tasks}

        def through_node() -> set[str] | None:
            return through(node_host, stack.port, wanted)

        # The node probes the copies on every host itself: their agents admit its --address, named to
        # them by the control plane (no --lb-source anywhere).
        eventually(through_node, 60, 1.0, "the node serving every copy\n" + log_path.read_text()[-2000:])
        hosts.server.stop()
        assert through_node() == wanted, log_path.read_text()[-3000:]  # its last snapshot, the control plane gone
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(5)
