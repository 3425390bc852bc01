"""From UpdateService to the first request served: a copy on another host beside one on the server's host.

Run (as root, needs network namespaces and Debian's ``docker.io``): ``python benchmarks/remote_start.py
[--runs 10]``; about 10 s per run plus ~30 s to set up.

Goal (issue 11): a copy on a remote host serves its first request through the server's listener
within 1.2x the time a copy on the server's own host takes.

The setup: the server (``portside server``) in the root namespace on 10.250.0.1, its own agent on
the machine's Docker Engine; one more host made by the many-hosts test harness
(``tests/support/hosts.py``: a network namespace on a bridge with its own ``dockerd``) running
``portside agent`` over HTTP + SigV4. Two services of the busybox web image, each behind its own
target group (health check every 1 s, healthy after 2) and listener: ``local`` placed on the
server's instance, ``remote`` on the other host (``memberOf(ec2InstanceId == ...)``). A run
scales one service from 0 to 1 with UpdateService and GETs its listener every 20 ms until the
copy answers (bounded: 60 s); then scales it back to 0 and waits until no task is left. Runs
alternate local and remote, so drift in the machine's load falls on both.

What the time contains, for both: the UpdateService call, the service scheduler's placement,
the assignment reaching the agent (in process for local, a long poll over HTTP for remote), the
port choice and container start, the RUNNING report, the target's registration and two health
checks (1 s interval), and the first proxied request. For remote the health checks and the
request cross the namespace bridge to the published port (DNAT); for local they go to the
container's bridge address (direct routing).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402
from botocore.config import Config  # noqa: E402

from portside.images import build_busybox_web_image  # noqa: E402
from tests.support.hosts import ROOT_ADDRESS, Cluster, machine_can_run_hosts  # noqa: E402
from tests.support.server import PortsideProcess, free_port  # noqa: E402

KEY, SECRET = "AKIDBENCH", "bench-secret"
FIRST_REQUEST_TIMEOUT_S = 60.0
GOAL = 1.2


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class Service:
    def __init__(self, ecs: Any, elb: Any, name: str, image: str, instance_id: str) -> None:
        self.ecs, self.name = ecs, name
        self.port = free_port()
        lb = elb.create_load_balancer(Name=name, Scheme="internal", Subnets=["subnet-bench"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name=name, Protocol="HTTP", Port=80, VpcId="vpc-bench", HealthCheckPath="/cgi-bin/whoami",
            HealthCheckIntervalSeconds=1, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        )["TargetGroups"][0]
        elb.modify_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}]
        )
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=self.port,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
        td = ecs.register_task_definition(family=name, containerDefinitions=[{
            "name": "web", "image": image, "memory": 32, "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "stopTimeout": 2,
        }])["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            serviceName=name, taskDefinition=td, desiredCount=0,
            loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}],
            placementConstraints=[{"type": "memberOf", "expression": f"ec2InstanceId == {instance_id}"}],
        )

    def first_request_s(self) -> float:
        started = time.monotonic()
        self.ecs.update_service(service=self.name, desiredCount=1)
        url = f"http://127.0.0.1:{self.port}/cgi-bin/whoami"
        while get(url) != 200:
            if time.monotonic() - started > FIRST_REQUEST_TIMEOUT_S:
                raise RuntimeError(f"{self.name}: no answer within {FIRST_REQUEST_TIMEOUT_S:g} s")
            time.sleep(0.02)
        took = time.monotonic() - started
        self.ecs.update_service(service=self.name, desiredCount=0)
        deadline = time.monotonic() + 60
        while self.ecs.list_tasks(serviceName=self.name)["taskArns"] and time.monotonic() < deadline:
            time.sleep(0.2)
        return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per side (default 10)")
    args = parser.parse_args()
    why = machine_can_run_hosts()
    if why:
        print(f"cannot make hosts here: {why}")
        return 2
    client = docker.from_env()
    image = build_busybox_web_image(client)
    work = Path(tempfile.mkdtemp(prefix="portside-remote-start-"))
    credentials = work / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[agent]\naws_access_key_id = AKIDAGENTB\naws_secret_access_key = agent-secret\n"
    )
    credentials.chmod(0o600)
    cluster = Cluster()
    cluster.open()
    server = agent = None
    try:
        [host] = cluster.add_hosts(1, images=(image,), image_source=client)
        server = PortsideProcess(work / "server", "--credentials", str(credentials), "--min-health-check-interval", "1",
                                 api_host=ROOT_ADDRESS)
        server.start()
        with open(work / "agent.log", "ab") as log:
            agent = subprocess.Popen([
                "nsenter", f"--net=/run/netns/{host.netns}", sys.executable, "-m", "portside.cli.main", "agent",
                "--server", server.endpoint, "--credentials", str(credentials), "--profile", "agent",
                "--address", host.address, "--docker-host", host.docker_url, "--instance-id", host.instance_id,
                "--state-dir", str(host.folder / "agent"),
            ], stdout=log, stderr=subprocess.STDOUT)
        ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        elb = server.client("elbv2", aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                            config=Config(parameter_validation=False))
        deadline = time.monotonic() + 60
        while len(ecs.list_container_instances()["containerInstanceArns"]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the remote agent did not register")
            time.sleep(0.5)
        instances = ecs.describe_container_instances(
            containerInstances=ecs.list_container_instances()["containerInstanceArns"])["containerInstances"]
        local_id = next(i["ec2InstanceId"] for i in instances if i["ec2InstanceId"] != host.instance_id)
        services = {"local": Service(ecs, elb, "bench-local", image, local_id),
                    "remote": Service(ecs, elb, "bench-remote", image, host.instance_id)}
        times: dict[str, list[float]] = {"local": [], "remote": []}
        for run in range(args.runs):
            for side in ("local", "remote") if run % 2 == 0 else ("remote", "local"):
                times[side].append(services[side].first_request_s())
            print(f"  run {run + 1}: local {times['local'][-1]:.2f} s, remote {times['remote'][-1]:.2f} s", flush=True)
        print()
        print("UpdateService 0 -> 1 until the first request through the listener answers (s)")
        print(f"{'where':8} {'runs':>4} {'min':>6} {'median':>7} {'max':>6}")
        for side in ("local", "remote"):
            xs = times[side]
            print(f"{side:8} {len(xs):>4} {min(xs):>6.2f} {statistics.median(xs):>7.2f} {max(xs):>6.2f}")
        ratio = statistics.median(times["remote"]) / statistics.median(times["local"])
        verdict = "met" if ratio <= GOAL else "NOT MET"
        print(f"\nremote / local (medians): {ratio:.2f}x; goal <= {GOAL}x: {verdict}")
        return 0 if ratio <= GOAL else 1
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()
        if server is not None:
            server.stop()
            _remove_server_copies(client, server)
        cluster.close()


def _remove_server_copies(client: Any, server: PortsideProcess) -> None:
    from portside.agent.driver import LABEL_OWNER
    from portside.agent.firewall import HostFirewall
    from portside.agent.host import owner_id
    from portside.core.firewall import chain_name

    owner = owner_id(server.state_dir)
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}):
        container.remove(force=True, v=True)
    HostFirewall(chain_name(owner)).remove()


if __name__ == "__main__":
    sys.exit(main())
