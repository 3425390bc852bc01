"""Two replicas of the control plane on one real PostgreSQL, three namespace hosts with an agent and a
Docker Engine each, and a load-balancer node: kill the leader mid-change, stop the database.

The replicas run in the root namespace on the harness's address (10.250.0.1), each with its own
state directory and instance id; copies run only on the three hosts (memberOf role=worker). Agents
and the node are given both replicas' URLs. Clients go through the node (tests/support/hosts.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from portside.control.secrets_key import SecretsKey
from tests.integration.test_many_hosts import (  # noqa: F401  (credentials: a fixture)
    KEY,
    SECRET,
    SPREAD,
    WORKERS,
    ZONES,
    Agent,
    Client,
    credentials,
    port,
    runtime,
    through,
)
from tests.integration.test_services import Stack
from tests.integration.test_tasks import web_definition
from tests.support.hosts import ROOT_ADDRESS, Cluster, Host
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

TTL_S, GRACE_S, LEASE_S = 3, 6, 3
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=10)


def health(replica: PortsideProcess) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(replica.endpoint + "/healthz", timeout=2) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except OSError:
        return None


class Replicas:
    def __init__(self, tmp_path: Path, store: str, credentials: Path, cluster: Cluster) -> None:
        self.cluster = cluster
        # Replicas share one secrets key (docs/secrets.md): a replica with another is refused at start.
        key_file = tmp_path / "secrets.key"
        SecretsKey.load_or_create(key_file)
        self.replicas = [
            PortsideProcess(
                tmp_path / f"replica-{n}", "--store", store, "--credentials", str(credentials),
                "--secrets-key-file", str(key_file),
                "--min-health-check-interval", "1", "--agent-ttl", str(TTL_S), "--agent-grace", str(GRACE_S),
                "--leader-lease", str(LEASE_S), "--firewall", "off", "--instance-id", f"i-0000000000000000{n}",
                api_host=ROOT_ADDRESS,
            )
            for n in (1, 2)
        ]
        self.agents: list[Agent] = []
        self.node: subprocess.Popen[bytes] | None = None
        self.node_log = cluster.hosts[2].folder / "lb.log"
        self.credentials = credentials

    @property
    def urls(self) -> str:
        return ",".join(r.endpoint for r in self.replicas)

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()
        self.agents = [Agent(h, self.urls, self.credentials, z) for h, z in zip(self.cluster.hosts, ZONES, strict=True)]
        eventually(self._workers, 60, 0.5, "three agents registered and connected")

    def start_node(self) -> Host:
        """`portside lb` on the third host, following both replicas."""
        node_host = self.cluster.hosts[2]
        with open(self.node_log, "ab") as log:
            self.node = subprocess.Popen([
                "nsenter", f"--net=/run/netns/{node_host.netns}", sys.executable, "-m", "portside.cli.main", "lb",
                "--server", self.urls, "--credentials", str(self.credentials), "--profile", "agent",
                "--bind-address", node_host.address, "--address", node_host.address,
                "--state-dir", str(node_host.folder / "lb"),
            ], stdout=log, stderr=subprocess.STDOUT)
        return node_host

    def close(self) -> None:
        if self.node is not None:
            self.node.send_signal(signal.SIGTERM)
            try:
                self.node.wait(15)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait(5)
        for agent in self.agents:
            agent.stop()
        for replica in self.replicas:
            replica.stop()

    def assert_firewalls_steady(self) -> None:
        """No agent found its chain drifted: a chain that never matches its plan is rewritten every 10 s."""
        for agent in self.agents:
            drifted = [line for line in agent.log_path.read_text().splitlines() if "does not hold" in line]
            assert not drifted, drifted[:2]

    # -- who leads

    def leader(self) -> PortsideProcess:
        return eventually(self._one_leader, LEASE_S * 4, 0.2, "exactly one leader")

    def _one_leader(self) -> PortsideProcess | None:
        leading = [r for r in self.replicas if (health(r) or {}).get("leader")]
        return leading[0] if len(leading) == 1 else None

    def other(self, replica: PortsideProcess) -> PortsideProcess:
        return next(r for r in self.replicas if r is not replica)

    # -- clients of one replica

    def ecs(self, replica: PortsideProcess, config: Config | None = None) -> Any:
        return replica.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=config)

    def elb(self, replica: PortsideProcess) -> Any:
        return replica.client("elbv2", aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                              config=Config(parameter_validation=False, retries={"max_attempts": 2, "mode": "standard"}))

    def _workers(self) -> list[dict[str, Any]] | None:
        ecs = self.ecs(self.replicas[0])
        described = ecs.describe_container_instances(
            containerInstances=ecs.list_container_instances()["containerInstanceArns"])["containerInstances"]
        found = [i for i in described if {"name": "role", "value": "worker"} in i["attributes"]]
        return found if len(found) == 3 and all(i["agentConnected"] for i in found) else None

    def instance_of(self, task: dict[str, Any]) -> str:
        """The ec2InstanceId of the host a task runs on (its targets' id)."""
        [instance] = self.ecs(self.replicas[0]).describe_container_instances(
            containerInstances=[task["containerInstanceArn"]])["containerInstances"]
        return str(instance["ec2InstanceId"])

    # -- what runs

    def running_containers(self, family: str) -> Counter[str]:
        """Containers of ``family`` running on the hosts' engines, by host: each task's must run once."""
        counts: Counter[str] = Counter()
        for host in self.cluster.hosts:
            for container in host.docker().containers.list(filters={"status": "running"}):
                if container.name.startswith(f"ecs-{family}-"):
                    counts[host.name] += 1
        return counts

    def settled(self, replica: PortsideProcess, name: str, stack: Stack, count: int, revision: int) -> list[dict[str, Any]] | None:
        """The service's tasks once exactly ``count`` run, all of ``revision``, each the one healthy target."""
        ecs, elb = self.ecs(replica), self.elb(replica)
        arns = ecs.list_tasks(serviceName=name)["taskArns"]
        if len(arns) != count:
            return None
        tasks = ecs.describe_tasks(tasks=arns)["tasks"]
        if any(t["lastStatus"] != "RUNNING" or not t["taskDefinitionArn"].endswith(f":{revision}") for t in tasks):
            return None
        [service] = ecs.describe_services(services=[name])["services"]
        if len(service["deployments"]) != 1:
            return None
        health_ = elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
        states = [d["TargetHealth"]["State"] for d in health_]
        return tasks if len(states) == count and set(states) == {"healthy"} else None

    def wait_settled(self, replica: PortsideProcess, name: str, stack: Stack, count: int, revision: int) -> list[dict[str, Any]]:
        try:
            return eventually(lambda: self.settled(replica, name, stack, count, revision), 150, 1.0,
                              f"{name}: {count} healthy copies of revision {revision}")
        except AssertionError as exc:
            logs = "".join(a.log() for a in self.agents) + "".join(r.log()[-3000:] for r in self.replicas)
            raise AssertionError(f"{exc}\n{self.state(replica, name, stack)}\n{logs}") from None

    def state(self, replica: PortsideProcess, name: str, stack: Stack) -> str:
        """The service's deployments, tasks and targets, as the replica answers them (diagnostics)."""
        try:
            ecs, elb = self.ecs(replica), self.elb(replica)
            [service] = ecs.describe_services(services=[name])["services"]
            arns = ecs.list_tasks(serviceName=name)["taskArns"]
            tasks = ecs.describe_tasks(tasks=arns)["tasks"] if arns else []
            targets = elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"(state unavailable: {exc})"
        deployments = [(d["status"], d["taskDefinition"][-8:], d["desiredCount"], d["runningCount"], d["pendingCount"])
                       for d in service["deployments"]]
        return (f"deployments {deployments}\nevents {[e['message'] for e in service['events'][:8]]}\n"
                f"tasks {[(t['taskArn'][-6:], t['taskDefinitionArn'][-8:], t['lastStatus'], t['desiredStatus']) for t in tasks]}\n"
                f"targets {[(d['Target']['Id'], d['Target']['Port'], d['TargetHealth']['State']) for d in targets]}")

    def service(self, replica: PortsideProcess, name: str, image: str, count: int) -> tuple[Stack, str]:
        ecs = self.ecs(replica)
        definition = web_definition(image, family=name)
        td = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        stack = Stack(self.elb(replica), name)
        ecs.create_service(
            serviceName=name, taskDefinition=td, desiredCount=count, loadBalancers=stack.load_balancers(),
            placementConstraints=WORKERS, placementStrategy=SPREAD,
            deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200},
        )
        return stack, td


@pytest.fixture
def replicas(make_cluster: Any, tmp_path: Path, credentials: Path, postgres_url: str) -> Iterator[Replicas]:  # noqa: F811
    cluster = make_cluster(3)
    made = Replicas(tmp_path, postgres_url, credentials, cluster)
    try:
        made.start()
        yield made
    finally:
        made.close()


def kill_leader_and_wait_for_the_other(replicas: Replicas) -> tuple[PortsideProcess, float]:
    leader = replicas.leader()
    epoch = health(leader)["epoch"]  # type: ignore[index]
    killed_at = time.monotonic()
    leader.kill9()
    survivor = replicas.other(leader)
    eventually(lambda: (health(survivor) or {}).get("leader"), LEASE_S * 4, 0.2, "the other replica leading")
    took = time.monotonic() - killed_at
    assert health(survivor)["epoch"] == epoch + 1  # type: ignore[index]
    return survivor, took


def test_killing_the_leader_mid_deployment_the_other_finishes_it_and_every_task_runs_once(
    replicas: Replicas, busybox_image: str
) -> None:
    first = replicas.leader()
    stack, _ = replicas.service(first, "roll", busybox_image, 3)
    tasks = replicas.wait_settled(first, "roll", stack, 3, revision=1)
    node_host = replicas.start_node()
    eventually(lambda: through(node_host, stack.port, {runtime(t) for t in tasks}), 60, 1.0,
               "the node serving every copy\n" + replicas.node_log.read_text()[-2000:] if replicas.node_log.exists() else "")
    client = Client(f"http://{node_host.address}:{stack.port}", max_seconds=240)

    # A new revision: a rolling deployment that starts new copies before it stops old ones.
    ecs = replicas.ecs(first)
    td2 = ecs.register_task_definition(**web_definition(busybox_image, family="roll", stopTimeout=3))[
        "taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(service="roll", taskDefinition=td2)

    def rolling() -> bool:
        [service] = ecs.describe_services(services=["roll"])["services"]
        return len(service["deployments"]) == 2 and any(
            d["status"] == "PRIMARY" and d["runningCount"] + d["pendingCount"] >= 1 for d in service["deployments"])

    eventually(rolling, 60, 0.2, "the deployment under way")
    survivor, took = kill_leader_and_wait_for_the_other(replicas)

    after = replicas.wait_settled(survivor, "roll", stack, 3, revision=2)
    time.sleep(2)
    codes = client.stop()
    print(f"leader killed mid-deployment: new leader in {took:.1f} s; client saw {dict(codes)}")
    assert not {t["taskArn"] for t in tasks} & {t["taskArn"] for t in after}
    eventually(lambda: sum(replicas.running_containers("roll").values()) == 3 or None, 30, 0.5,
               "exactly three copies running on the hosts' engines")
    assert codes[200] > 20 and sum(n for c, n in codes.items() if c != 200) <= 3, codes
    replicas.assert_firewalls_steady()


def test_killing_the_leader_mid_scale_out_the_other_finishes_it_without_doubling(
    replicas: Replicas, busybox_image: str
) -> None:
    first = replicas.leader()
    stack, _ = replicas.service(first, "grow", busybox_image, 2)
    replicas.wait_settled(first, "grow", stack, 2, revision=1)
    replicas.ecs(first).update_service(service="grow", desiredCount=8)
    time.sleep(0.3)  # the leader has begun placing
    survivor, took = kill_leader_and_wait_for_the_other(replicas)
    tasks = replicas.wait_settled(survivor, "grow", stack, 8, revision=1)
    print(f"leader killed mid-scale-out: new leader in {took:.1f} s")
    assert len({t["taskArn"] for t in tasks}) == 8
    eventually(lambda: sum(replicas.running_containers("grow").values()) == 8 or None, 30, 0.5,
               "exactly eight copies running on the hosts' engines")
    assert sorted(replicas.running_containers("grow").values()) == [2, 3, 3]  # spread over the zones

    # The killed replica comes back as a follower; a StopTask through it drains the copy's target
    # first, as through the leader (control/task_drain.py), and the leader replaces the copy.
    follower = replicas.other(survivor)
    follower.start()
    assert health(follower)["leader"] is False  # type: ignore[index]
    victim = tasks[0]
    stopped = replicas.ecs(follower).stop_task(task=victim["taskArn"], reason="by hand")["task"]
    assert stopped["desiredStatus"] == "STOPPED" and stopped["lastStatus"] == "DEACTIVATING"
    described = replicas.elb(follower).describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
    states = {d["Target"]["Port"]: d["TargetHealth"]["State"] for d in described
              if d["Target"]["Id"] == replicas.instance_of(victim)}
    # Draining, or drained already: nothing was in flight to it (no node serves in this test).
    assert states.get(port(victim)) in (None, "draining"), described
    after = replicas.wait_settled(survivor, "grow", stack, 8, revision=1)
    assert victim["taskArn"] not in {t["taskArn"] for t in after}
    [gone] = replicas.ecs(survivor).describe_tasks(tasks=[victim["taskArn"]])["tasks"]
    assert gone["lastStatus"] == "STOPPED" and gone["stoppedReason"] == "by hand"


def test_with_the_database_stopped_copies_keep_serving_the_api_answers_503_and_all_resumes(
    replicas: Replicas, busybox_image: str, postgres_server: Any
) -> None:
    first = replicas.leader()
    stack, _ = replicas.service(first, "outage", busybox_image, 3)
    tasks = replicas.wait_settled(first, "outage", stack, 3, revision=1)
    node_host = replicas.start_node()
    wanted = {runtime(t) for t in tasks}
    eventually(lambda: through(node_host, stack.port, wanted), 60, 1.0, "the node serving every copy")

    postgres_server.stop()
    stopped_at = time.monotonic()
    try:
        for replica in replicas.replicas:
            started = time.monotonic()
            with pytest.raises(botocore.exceptions.ClientError) as caught:
                replicas.ecs(replica, NO_RETRIES).describe_services(services=["outage"])
            assert time.monotonic() - started < 5  # an answer, not a hang
            error = caught.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
            assert error["Error"]["Code"] == "ServiceUnavailable"
            assert (health(replica) or {}).get("storeAvailable") is False
        # What runs keeps serving through the node, and no copy is stopped, for the whole outage.
        while time.monotonic() - stopped_at < 30:
            assert through(node_host, stack.port, wanted) == wanted
            time.sleep(2)
        assert sum(replicas.running_containers("outage").values()) == 3
    finally:
        postgres_server.start()

    # Back: the API answers again (boto3 retries 503 by itself), and the controllers act.
    leader = replicas.leader()
    eventually(lambda: (health(leader) or {}).get("storeAvailable"), 30, 0.5, "the store available again")
    replicas.ecs(leader).update_service(service="outage", desiredCount=4)
    replicas.wait_settled(leader, "outage", stack, 4, revision=1)
    assert sum(replicas.running_containers("outage").values()) == 4


def test_a_replica_refuses_a_store_written_by_a_newer_portside(tmp_path: Path, postgres_url: str) -> None:
    """An older binary against a newer schema: it says so and exits, writing nothing."""
    import psycopg

    from portside.control.store import Store
    from portside.control.store.schema import SCHEMA_VERSION

    Store(postgres_url).close()  # the schema, as this version writes it
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        revision = conn.execute("SELECT value FROM revision").fetchone()
    replica = PortsideProcess(tmp_path / "old", "--store", postgres_url, "--firewall", "off")
    replica.start(wait=False)
    assert replica.wait_exit(60) != 0
    log = replica.log()
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this portside knows ({SCHEMA_VERSION})" in log, log
    assert "Traceback" not in log
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM revision").fetchone() == revision


@pytest.mark.parametrize(("flag", "value", "named"), [
    ("--store", "mysql://db/portside", "--store mysql://db/portside: must be postgresql://"),
    ("--store", "postgresql://u:secret@db", "--store postgresql://...@db: must be postgresql://"),
    ("--store", "postgresql://db:notaport/x", "--store: Port could not be cast"),
    ("--instance-id", "host-1", "--instance-id host-1: must be"),
    ("--leader-lease", "0.5", "--leader-lease"),
])
def test_a_bad_replica_flag_is_refused_naming_it_and_no_password_is_shown(
    tmp_path: Path, flag: str, value: str, named: str
) -> None:
    from tests.support.server import free_port

    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path / "state"), flag, value],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was made


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    from tests.support.server import free_port

    url = f"postgresql://portside:hunter2@127.0.0.1:{free_port()}/portside"
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path / "state"), "--store", url, "--firewall", "off"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "cannot connect" in result.stderr and "postgresql://portside:***@127.0.0.1" in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_single_server_leads_and_says_so_in_healthz_and_metrics(portside: PortsideProcess) -> None:
    document = health(portside)
    assert document is not None
    assert document["leader"] is True and document["epoch"] >= 1 and document["storeAvailable"] is True
    assert document["store"] in ("sqlite", "postgresql") and document["revision"] >= 1
    with urllib.request.urlopen(portside.endpoint + "/metrics", timeout=5) as reply:
        metrics = reply.read().decode()
    assert "\nportside_leader 1\n" in metrics and "\nportside_store_available 1\n" in metrics
    assert f"\nportside_leader_epoch {document['epoch']}\n" in metrics
    assert "\nportside_store_revision " in metrics
