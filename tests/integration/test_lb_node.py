"""`portside lb`: a load-balancer node in its own process, fed over HTTP + SigV4 by a real server.

The server runs on loopback with its internal listener on 127.0.0.1:PORT; the node runs on the same
machine with ``--bind-address 127.0.0.2``, so it binds the same listener port on another loopback
address (docs/architecture.md, "Load-balancer nodes"). Copies are real containers of a real service;
every request goes through the node's listener, from bounded loops.
"""

from __future__ import annotations

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

import pytest
from botocore.config import Config

from tests.integration.conftest import remove_server_containers
from tests.integration.test_services import Stack, create_service, task_definition, tasks_of
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

NODE_ADDRESS = "127.0.0.2"
KEY, SECRET = "AKIDLBSERVER", "lb-server-secret"
NODE_KEY, NODE_SECRET = "AKIDLBNODE", "lb-node-secret"


class Node:
    """`python -m portside.cli.main lb` against ``server``; stopped (SIGTERM, then SIGKILL) by ``stop``."""

    def __init__(self, server: PortsideProcess, credentials: Path, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir.parent / "node.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "portside.cli.main",
                    "lb",
                    "--server",
                    server.endpoint,
                    "--credentials",
                    str(credentials),
                    "--profile",
                    "lb",
                    "--bind-address",
                    NODE_ADDRESS,
                    "--state-dir",
                    str(state_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text()[-6000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def whoami(url: str, timeout: float = 3) -> str | None:
    """The first line of /cgi-bin/whoami through ``url`` (the answering copy's hostname), or None."""
    try:
        with urllib.request.urlopen(url + "/cgi-bin/whoami", timeout=timeout) as reply:
            return reply.read().decode().splitlines()[0] if reply.status == 200 else None
    except (OSError, urllib.error.URLError, IndexError):
        return None


def spread(url: str, count: int, seconds: float) -> Counter[str]:
    """Who answered ``count`` requests through ``url`` (failures counted as "-"), within ``seconds``."""
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    for _ in range(count):
        seen[whoami(url) or "-"] += 1
        if time.monotonic() > deadline:
            break
    return seen


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[lb]\naws_access_key_id = {NODE_KEY}\naws_secret_access_key = {NODE_SECRET}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def server(
    tmp_path: Path, credentials: Path, docker_client: Any, busybox_image: str
) -> Iterator[PortsideProcess]:
    process = PortsideProcess(
        tmp_path / "server",
        "--credentials",
        str(credentials),
        "--auth",
        "always",
        "--min-health-check-interval",
        "1",
        "--stop-timeout",
        "3",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


@pytest.fixture
def node(server: PortsideProcess, credentials: Path, tmp_path: Path) -> Iterator[Node]:
    started = Node(server, credentials, tmp_path / "node")
    try:
        yield started
    finally:
        started.stop()


def test_a_node_serves_every_copy_probes_them_itself_and_outlives_its_control_plane(
    server: PortsideProcess, node: Node, docker_client: Any, busybox_image: str
) -> None:
    ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    # parameter_validation off: botocore refuses health check intervals below 5 s
    elb = server.client(
        "elbv2",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(parameter_validation=False, retries={"max_attempts": 2, "mode": "standard"}),
    )
    stack = Stack(elb, "edge")
    elb.modify_target_group(TargetGroupArn=stack.tg_arn, HealthCheckTimeoutSeconds=1)
    create_service(ecs, "edge", task_definition(ecs, busybox_image, "edge"), stack, 3)
    node_url = f"http://{NODE_ADDRESS}:{stack.port}"

    def healthy_copies(count: int) -> set[str] | None:
        health = elb.describe_target_health(TargetGroupArn=stack.tg_arn)["TargetHealthDescriptions"]
        if len(health) != count or any(d["TargetHealth"]["State"] != "healthy" for d in health):
            return None
        tasks = tasks_of(ecs, "edge")
        return {t["containers"][0]["runtimeId"][:12] for t in tasks} if len(tasks) == count else None

    copies = eventually(lambda: healthy_copies(3), 90, 0.5, "three healthy copies")

    # 1. Requests through the node reach every copy (and only copies).
    def serves(wanted: set[str], count: int = 30) -> Counter[str] | None:
        seen = spread(node_url, count, 20)
        return seen if set(seen) == wanted else None

    def wait(check: Any, timeout: float, what: str) -> Any:
        try:
            return eventually(check, timeout, 0.5, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nnode log:\n{node.log()}") from None

    seen = wait(lambda: serves(copies), 30, "the node serving all three copies")
    assert sum(seen.values()) == 30

    # 2. Without its control plane the node keeps serving its last snapshot.
    server.stop()
    wait(lambda: "control plane unreachable" in node.log(), 15, "the outage logged")
    seen = spread(node_url, 30, 20)
    assert set(seen) == copies, seen

    # 3. A copy that stops answering is taken out by the node's own health checks (the server is
    #    down: nothing else can take it out), and comes back when it answers again.
    frozen = docker_client.containers.get(min(copies))
    frozen.pause()
    try:
        alive = copies - {frozen.id[:12]}
        wait(lambda: serves(alive, 12), 40, "the frozen copy out of rotation")
        assert set(spread(node_url, 30, 20)) == alive
    finally:
        frozen.unpause()
    wait(lambda: serves(copies), 40, "the copy back in rotation")
    assert node.log().count("control plane unreachable") == 1  # logged once, however long the outage

    # 4. The restarted server answers the same revision for the same configuration (no reload);
    #    a change made then reaches the node within seconds, through its waiting poll.
    applied = node.log().count("serving snapshot revision")
    server.start()
    wait(lambda: "control plane reachable again" in node.log(), 20, "the node back in touch")
    assert node.log().count("serving snapshot revision") == applied
    ecs.update_service(service="edge", desiredCount=4)
    copies = eventually(lambda: healthy_copies(4), 90, 0.5, "four healthy copies")
    healthy_at = time.monotonic()
    wait(lambda: serves(copies, 40), 20, "the node serving the fourth copy")
    print(
        f"fourth copy served by the node {time.monotonic() - healthy_at:.1f} s "
        "after the server saw it healthy"
    )
