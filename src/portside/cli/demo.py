"""``portside demo``: the main job in one command.

Builds the demo web image locally when it is missing (no registry), starts a
portside server when none answers on the endpoint, and deploys a service of
several copies on dynamic host ports behind a load balancer listener on
127.0.0.1:8080 — the whole ECS dynamic port mapping loop. It shows a live table
of tasks, host ports and target health, and which copy answered through the
listener; on Ctrl-C (or after PORTSIDE_DEMO_EXIT_AFTER seconds) it removes what
it created. With PORTSIDE_DEMO_CHECK=1 it exits non-zero unless every copy
answered through the listener and nothing it created is left — CI runs it so.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from portside.cli.client import make_client
from portside.cli.tables import table

DEMO_NAME = "portside-demo"
LISTENER_PORT = 8080
SERVER_START_TIMEOUT_S = 30.0
TEARDOWN_TIMEOUT_S = 90.0


def demo_task_definition(image: str) -> dict[str, Any]:
    return {
        "family": DEMO_NAME,
        "containerDefinitions": [
            {
                "name": "web",
                "image": image,
                "memory": 32,
                "cpu": 64,
                "essential": True,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "stopTimeout": 5,
            }
        ],
    }


class Demo:
    def __init__(self, endpoint: str, copies: int) -> None:
        self.ecs = make_client("ecs", endpoint)
        self.elb = make_client("elbv2", endpoint)
        self.copies = copies
        self.load_balancer_arn: str | None = None
        self.target_group_arn: str | None = None
        self.service = False
        self.answered: set[str] = set()

    def deploy(self, image: str) -> None:
        ecs, elb = self.ecs, self.elb
        definition = ecs.register_task_definition(**demo_task_definition(image))["taskDefinition"]
        self.load_balancer_arn = elb.create_load_balancer(
            Name=DEMO_NAME, Scheme="internal", Subnets=["subnet-demo"], Tags=[{"Key": "portside", "Value": "demo"}]
        )["LoadBalancers"][0]["LoadBalancerArn"]
        self.target_group_arn = elb.create_target_group(
            Name=DEMO_NAME, Protocol="HTTP", Port=80, VpcId="vpc-demo", TargetType="instance",
            HealthCheckPath="/cgi-bin/whoami", HealthCheckIntervalSeconds=5, HealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=self.target_group_arn,
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
        )
        elb.create_listener(
            LoadBalancerArn=self.load_balancer_arn, Protocol="HTTP", Port=LISTENER_PORT,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.target_group_arn}],
        )
        ecs.create_service(
            serviceName=DEMO_NAME, taskDefinition=definition["taskDefinitionArn"], desiredCount=self.copies,
            loadBalancers=[{"targetGroupArn": self.target_group_arn, "containerName": "web", "containerPort": 80}],
        )
        self.service = True

    def screen(self) -> str:
        arns = self.ecs.list_tasks(serviceName=DEMO_NAME)["taskArns"]
        tasks = self.ecs.describe_tasks(tasks=arns)["tasks"] if arns else []
        health = {}
        if self.target_group_arn:
            for d in self.elb.describe_target_health(TargetGroupArn=self.target_group_arn)["TargetHealthDescriptions"]:
                health[d["Target"]["Port"]] = d["TargetHealth"]["State"]
        rows = []
        for task in sorted(tasks, key=lambda t: t["createdAt"]):
            bindings = task["containers"][0].get("networkBindings", [])
            port = bindings[0]["hostPort"] if bindings else None
            rows.append([task["taskArn"].rsplit("/", 1)[-1][:12], task["lastStatus"],
                         f"127.0.0.1:{port} -> 80" if port else "-", health.get(port, "-")])
        answer = _get(f"http://127.0.0.1:{LISTENER_PORT}/cgi-bin/whoami")
        if answer:
            self.answered.add(answer)
        lines = [
            f"portside demo: service {DEMO_NAME}, {self.copies} copies on dynamic host ports behind "
            f"http://127.0.0.1:{LISTENER_PORT}/  (Ctrl-C removes everything)",
            table(["TASK", "STATUS", "HOST PORT -> CONTAINER", "TARGET HEALTH"], rows),
            f"through the listener: answered by {answer or '-'}; distinct copies seen so far: {len(self.answered)}",
        ]
        return "\n".join(lines) + "\n"

    def teardown(self) -> None:
        ecs, elb = self.ecs, self.elb
        steps: list[tuple[str, Any]] = []
        if self.service:
            steps.append(("scaling the service to 0", lambda: ecs.update_service(service=DEMO_NAME, desiredCount=0)))
            steps.append(("waiting for its copies to drain and stop", self._wait_no_tasks))
            steps.append(("deleting the service", lambda: ecs.delete_service(service=DEMO_NAME, force=True)))
        if self.load_balancer_arn:
            steps.append(("deleting the load balancer and its listener", lambda: elb.delete_load_balancer(LoadBalancerArn=self.load_balancer_arn)))
        if self.target_group_arn:
            steps.append(("deleting the target group", lambda: elb.delete_target_group(TargetGroupArn=self.target_group_arn)))
        for what, step in steps:
            click.echo(f"demo: {what} ...")
            try:
                step()
            except Exception as exc:  # keep tearing down the rest; say what failed
                click.echo(f"demo: {what} failed: {exc}", err=True)

    def _wait_no_tasks(self) -> None:
        """Until no copy is meant to run and every stopped one has drained and reached STOPPED."""
        deadline = time.monotonic() + TEARDOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.ecs.list_tasks(serviceName=DEMO_NAME)["taskArns"]:
                stopping = self.ecs.list_tasks(serviceName=DEMO_NAME, desiredStatus="STOPPED")["taskArns"]
                tasks = self.ecs.describe_tasks(tasks=stopping[:100])["tasks"] if stopping else []
                if all(t["lastStatus"] == "STOPPED" for t in tasks):
                    return
            time.sleep(0.5)


def run_demo(endpoint: str, state_dir: Path, copies: int, exit_after: float | None, check: bool) -> int:
    import docker

    from portside.agent.driver import LABEL_FAMILY
    from portside.images import build_busybox_web_image

    docker_client = docker.from_env()
    click.echo("demo: building the demo image (FROM scratch + busybox) if missing ...")
    image = build_busybox_web_image(docker_client)
    server = _ensure_server(endpoint, state_dir)
    demo = Demo(endpoint, copies)
    interrupted = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    try:
        demo.deploy(image)
        started = time.monotonic()
        last_print = 0.0
        while not interrupted and (exit_after is None or time.monotonic() - started < exit_after):
            screen = demo.screen()
            if sys.stdout.isatty():
                click.echo("\x1b[2J\x1b[H" + screen, nl=False)
            elif time.monotonic() - last_print >= 5:
                click.echo(screen)
                last_print = time.monotonic()
            time.sleep(0.25 if len(demo.answered) < copies else 1.0)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        demo.teardown()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    leftovers = docker_client.containers.list(all=True, filters={"label": f"{LABEL_FAMILY}={DEMO_NAME}"})
    listener_left = _port_open(LISTENER_PORT)
    click.echo(
        f"demo: {len(demo.answered)} distinct copies answered through the listener; "
        f"{len(leftovers)} containers left; listener {'still open' if listener_left else 'closed'}"
    )
    if check and (len(demo.answered) < copies or leftovers or listener_left):
        return 1
    return 0


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().decode().splitlines()[0]
    except (urllib.error.URLError, OSError, IndexError):
        return ""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ensure_server(endpoint: str, state_dir: Path) -> subprocess.Popen[bytes] | None:
    """Start a portside server for the demo unless one answers already; return it if we started it."""
    if _answers(endpoint):
        click.echo(f"demo: using the portside server at {endpoint}")
        return None
    host_port = endpoint.split("://", 1)[-1].rstrip("/")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "server.log"
    click.echo(f"demo: starting a portside server on {host_port} (log: {log_path})")
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "server", "--api", host_port, "--state-dir", str(state_dir),
             "--task-cleanup-wait", "0"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise click.ClickException(f"the portside server exited at start; see {log_path}")
        if _answers(endpoint):
            return server
        time.sleep(0.2)
    server.terminate()
    raise click.ClickException(f"the portside server did not answer within {SERVER_START_TIMEOUT_S:g} s; see {log_path}")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/healthz", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


def exit_after_from_env() -> float | None:
    value = os.environ.get("PORTSIDE_DEMO_EXIT_AFTER")
    return float(value) if value else None
