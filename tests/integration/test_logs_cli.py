"""Reading awslogs output the ways users do: ``aws logs tail --follow`` (AWS CLI v2) and ``portside logs``."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_awslogs import awslogs_definition, task_id
from tests.integration.test_tasks import run, wait_running
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

AWS_V2 = Path("/usr/bin/aws")  # Debian's awscli package (scripts/setup installs it); `logs tail` is v2 only
FOLLOW_TIMEOUT_S = 60


def aws_env(tmp_path: Path) -> dict[str, str]:
    """Test credentials and an isolated configuration: nothing of the machine's own AWS setup applies."""
    return {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1",
            "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"), "AWS_PAGER": "",
            "PYTHONUNBUFFERED": "1"}  # the CLI is Python: on a pipe (not a terminal) it would hold lines back


def read_until(proc: subprocess.Popen[bytes], wanted: list[str], timeout: float) -> str:
    """What ``proc`` printed until every ``wanted`` string appeared (AssertionError after ``timeout``)."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while not all(w in out.decode("utf-8", "replace") for w in wanted):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None and not selector.select(0):
                raise AssertionError(f"{wanted} not printed in {timeout} s; got {out!r}")
            if selector.select(min(left, 1.0)):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk and proc.poll() is not None:
                    continue
                out += chunk
    finally:
        selector.close()
    return out.decode("utf-8", "replace")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.skipif(not AWS_V2.exists(), reason="AWS CLI v2 (/usr/bin/aws) is not installed: run scripts/setup")
def test_aws_logs_tail_follow_shows_a_tasks_lines(portside: PortsideProcess, ecs: Any, busybox_image: str,
                                                 tmp_path: Path) -> None:
    group = f"/ecs/tail-{uuid.uuid4().hex[:8]}"
    script = "for i in 1 2 3; do echo tailed-$((i*100)); done; sleep 60"
    [arn] = run(ecs, awslogs_definition(busybox_image, group, script, family="tailed", **{"awslogs-create-group": "true"}))
    proc = subprocess.Popen(
        [str(AWS_V2), "logs", "tail", group, "--follow", "--format", "short", "--endpoint-url", portside.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=aws_env(tmp_path),
    )
    try:
        out = read_until(proc, ["tailed-100", "tailed-200", "tailed-300"], FOLLOW_TIMEOUT_S)
    finally:
        stop(proc)
        ecs.stop_task(task=arn)
    assert out.index("tailed-100") < out.index("tailed-200") < out.index("tailed-300")
    assert out.count("tailed-100") == 1


def portside_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portside.cli.main", *args, "--endpoint", endpoint],
                          capture_output=True, text=True, timeout=60)


def test_portside_logs_of_a_task(portside: PortsideProcess, ecs: Any, busybox_image: str) -> None:
    group = f"/ecs/cli-{uuid.uuid4().hex[:8]}"
    script = "echo hello-$((6*7)); echo bye-$((6*7)); sleep 60"
    [arn] = run(ecs, awslogs_definition(busybox_image, group, script, family="clilogs", **{"awslogs-create-group": "true"}))
    try:
        done = eventually(lambda: (d := portside_cli(portside.endpoint, "logs", task_id(arn))).stdout.count("\n") >= 2 and d,
                          timeout=60, what="both lines through portside logs")
        assert done.returncode == 0 and done.stdout == "hello-42\nbye-42\n"
    finally:
        ecs.stop_task(task=arn)


def test_portside_logs_says_when_a_task_has_no_awslogs(portside: PortsideProcess, ecs: Any, busybox_image: str) -> None:
    [arn] = run(ecs, {"family": "quiet", "containerDefinitions": [
        {"name": "app", "image": busybox_image, "memory": 32, "command": ["sh", "-c", "sleep 60"]}]})
    try:
        for extra in ((), ("--follow",)):
            done = portside_cli(portside.endpoint, "logs", arn, *extra)
            assert done.returncode == 1 and "awslogs" in done.stderr and done.stdout == ""
        missing = portside_cli(portside.endpoint, "logs", "no-such-thing")
        assert missing.returncode == 1 and "no task or service 'no-such-thing'" in missing.stderr
    finally:
        ecs.stop_task(task=arn)


def test_portside_logs_follows_a_service(portside: PortsideProcess, ecs: Any, busybox_image: str) -> None:
    group = f"/ecs/svc-{uuid.uuid4().hex[:8]}"
    script = "echo from-$HOSTNAME; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done"
    definition = awslogs_definition(busybox_image, group, script, family="svclogs", **{"awslogs-create-group": "true"})
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    name = f"svc-{uuid.uuid4().hex[:6]}"
    ecs.create_service(serviceName=name, taskDefinition=arn, desiredCount=2)
    proc = subprocess.Popen([sys.executable, "-m", "portside.cli.main", "logs", name, "--follow",
                             "--endpoint", portside.endpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        tasks = eventually(lambda: len(a := ecs.list_tasks(serviceName=name)["taskArns"]) == 2 and a, timeout=60,
                           what="the service's two tasks")
        wait_running(ecs, tasks)
        labels = [f"{task_id(t)[:8]}/app | tick-3" for t in tasks]
        out = read_until(proc, labels, FOLLOW_TIMEOUT_S)  # both tasks' lines, labelled, still coming
        assert out.count(labels[0]) == 1
    finally:
        stop(proc)
        ecs.update_service(service=name, desiredCount=0)
        ecs.delete_service(service=name, force=True)
