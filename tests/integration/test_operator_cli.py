"""The operator's verbs end to end: ``portside events``, ``portside scale`` and ``portside exec``,
run as ``python -m portside.cli.main`` against a real server and real tasks on the Docker Engine."""

from __future__ import annotations

import http.server
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_many_hosts import AGENT_KEY, AGENT_SECRET, KEY, SECRET, WORKERS, Agent
from tests.support.hosts import ROOT_ADDRESS
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker


def cli(
    server: PortsideProcess, *args: str, stdin: Any = subprocess.DEVNULL, input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside.cli.main", *args],
        env={**os.environ, "PORTSIDE_ENDPOINT": server.endpoint, **(env or {})},
        capture_output=True, text=True, timeout=120, check=False, **({"input": input} if input is not None else {"stdin": stdin}),
    )


def definition(ecs: Any, family: str, image: str, *names: str) -> None:
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": name, "image": image, "memory": 32, "essential": True} for name in names or ("app",)],
    )


@pytest.fixture
def task(portside: PortsideProcess, busybox_image: str) -> Iterator[Callable[..., str]]:
    """``task(*container_names)``: the id of a RUNNING task of those containers, stopped at the end."""
    ecs = portside.client()
    started: list[str] = []

    def run(*names: str) -> str:
        family = f"cli-exec-{len(names) or 1}"
        definition(ecs, family, busybox_image, *names)
        arn = ecs.run_task(cluster="default", taskDefinition=family)["tasks"][0]["taskArn"]
        started.append(arn)
        eventually(
            lambda: ecs.describe_tasks(cluster="default", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
            90, what=f"task {arn} running",
        )
        return str(arn.rsplit("/", 1)[-1])

    yield run
    for arn in started:
        ecs.stop_task(cluster="default", task=arn, reason="test done")


@pytest.fixture
def service(portside: PortsideProcess, busybox_image: str) -> Iterator[Callable[[str, int], None]]:
    ecs = portside.client()
    made: list[str] = []

    def create(name: str, desired: int) -> None:
        definition(ecs, name, busybox_image)
        ecs.create_service(cluster="default", serviceName=name, taskDefinition=name, desiredCount=desired)
        made.append(name)

    yield create
    for name in made:
        try:
            ecs.delete_service(cluster="default", service=name, force=True)
        except Exception:
            pass


# ----------------------------------------------------------------------------- exec


def test_exec_runs_a_command_in_the_task_and_passes_its_exit_status(portside: PortsideProcess, task: Callable[..., str]) -> None:
    task_id = task()
    done = cli(portside, "exec", task_id, "--", "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "out" and done.stderr == "err\n"
    assert lines[1]  # the container's own hostname: it ran in there
    # stdin is streamed to the command until end of file
    piped = cli(portside, "exec", task_id, "app", "--", "sh", "-c", "cat; echo; echo done", input="hello from stdin")
    assert (piped.returncode, piped.stdout) == (0, "hello from stdin\ndone\n"), piped.stderr


def test_exec_interrupted_without_a_tty_exits_130(portside: PortsideProcess, task: Callable[..., str]) -> None:
    task_id = task()
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside.cli.main", "exec", task_id, "--", "sh", "-c", "echo started; sleep 60"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PORTSIDE_ENDPOINT": portside.endpoint},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_exec_gives_a_tty_when_stdin_is_a_terminal(portside: PortsideProcess, task: Callable[..., str]) -> None:
    task_id = task()
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "exec", task_id, "--", "sh", "-c", "test -t 0 && echo IS-A-TTY; exit 4"],
            stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, "PORTSIDE_ENDPOINT": portside.endpoint},
        )
        os.close(terminal)
        terminal = -1
        output = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the other end closed
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(30) == 4, output
        assert b"IS-A-TTY" in output
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)


def test_exec_refuses_clearly(portside: PortsideProcess, task: Callable[..., str]) -> None:
    two = task("web", "sidecar")
    done = cli(portside, "exec", two, "--", "true")
    assert done.returncode == 1
    assert f"task {two} has containers web, sidecar: name one" in done.stderr
    done = cli(portside, "exec", two, "nope", "--", "true")
    assert done.returncode == 1 and f"task {two} has no container nope (it has web, sidecar)" in done.stderr
    assert cli(portside, "exec", two, "sidecar", "--", "true").returncode == 0

    done = cli(portside, "exec", "0123456789abcdef0123456789abcdef", "--", "true")
    assert done.returncode == 1 and "no task 0123456789abcdef0123456789abcdef in cluster default (MISSING)" in done.stderr

    done = cli(portside, "exec", two, "web")
    assert done.returncode == 2 and "give the command after --" in done.stderr

    done = cli(portside, "exec", two, "web", "--docker-host", "unix:///nonexistent/docker.sock", "--", "true")
    assert done.returncode == 1 and "cannot reach unix:///nonexistent/docker.sock" in done.stderr


@pytest.mark.netns
def test_exec_reaches_a_task_on_another_host_with_docker_host_and_refuses_without(
    make_cluster: Callable[..., Any], tmp_path: Path, busybox_image: str
) -> None:
    """A task placed on a namespace host's engine (its own `portside agent`): exec needs that engine."""
    [host] = make_cluster(1).hosts
    keys = tmp_path / "credentials"
    keys.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[agent]\naws_access_key_id = {AGENT_KEY}\naws_secret_access_key = {AGENT_SECRET}\n"
    )
    keys.chmod(0o600)
    server = PortsideProcess(tmp_path / "server", "--credentials", str(keys), api_host=ROOT_ADDRESS)
    agent = None
    try:
        server.start()
        agent = Agent(host, server.endpoint, keys, "us-east-1a")
        ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        ecs.register_task_definition(
            family="cli-remote", containerDefinitions=[{"name": "app", "image": busybox_image, "memory": 32}],
        )

        def placed() -> str | None:
            result = ecs.run_task(taskDefinition="cli-remote", placementConstraints=WORKERS)
            return str(result["tasks"][0]["taskArn"]) if result["tasks"] else None

        arn = eventually(placed, 60, 1, "a task placed on the host's agent")
        eventually(lambda: ecs.describe_tasks(tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING", 90, what="running")
        task_id = arn.rsplit("/", 1)[-1]
        signed = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}

        here = cli(server, "exec", task_id, "--", "true", env=signed)
        instance = ecs.describe_tasks(tasks=[arn])["tasks"][0]["containerInstanceArn"]
        assert here.returncode == 1
        assert f"the task runs on container instance {instance}" in here.stderr, here.stderr
        assert "give --docker-host for that host's engine" in here.stderr

        there = cli(server, "exec", task_id, "--docker-host", host.docker_url, "--", "sh", "-c", "echo remote; exit 7",
                    env=signed)
        assert (there.returncode, there.stdout) == (7, "remote\n"), there.stderr
        ecs.stop_task(task=arn, reason="test done")
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


# ----------------------------------------------------------------------------- events


def test_events_lists_a_services_events_newest_last(portside: PortsideProcess, service: Callable[[str, int], None]) -> None:
    service("cli-events", 1)
    ecs = portside.client()
    eventually(
        lambda: ecs.describe_services(cluster="default", services=["cli-events"])["services"][0]["events"],
        60, what="a service event",
    )
    done = cli(portside, "events", "cli-events")
    assert done.returncode == 0, done.stderr
    events = ecs.describe_services(cluster="default", services=["cli-events"])["services"][0]["events"]
    printed = [line.split("  ", 1)[1] for line in done.stdout.splitlines()]
    assert printed == [e["message"] for e in reversed(events)][: len(printed)] and printed
    assert "(service cli-events) has started 1 tasks" in printed[0]

    missing = cli(portside, "events", "no-such-service")
    assert missing.returncode == 1 and "no service no-such-service in cluster default" in missing.stderr


def test_events_follow_prints_new_events_as_they_come(portside: PortsideProcess, service: Callable[[str, int], None]) -> None:
    service("cli-follow", 1)
    ecs = portside.client()
    eventually(
        lambda: ecs.describe_services(cluster="default", services=["cli-follow"])["services"][0]["events"],
        60, what="a service event",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "portside.cli.main", "events", "cli-follow", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PORTSIDE_ENDPOINT": portside.endpoint},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        eventually(lambda: any("has started 1 tasks" in line for line in lines), 60, what="the first event printed")
        ecs.update_service(cluster="default", service="cli-follow", desiredCount=0)
        eventually(lambda: any("has stopped 1 running tasks" in line for line in lines), 90, what="the new event printed")
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode is not None


# ----------------------------------------------------------------------------- scale


def test_scale_sets_the_desired_count_within_the_scalable_targets_range(
    portside: PortsideProcess, service: Callable[[str, int], None]
) -> None:
    service("cli-scale", 0)
    ecs, aas = portside.client(), portside.client("application-autoscaling")

    def desired() -> int:
        return int(ecs.describe_services(cluster="default", services=["cli-scale"])["services"][0]["desiredCount"])

    done = cli(portside, "scale", "cli-scale", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cli-scale: desired count 2") and done.stderr == ""
    assert desired() == 2

    aas.register_scalable_target(
        ServiceNamespace="ecs", ResourceId="service/default/cli-scale", ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1, MaxCapacity=3,
    )
    try:
        done = cli(portside, "scale", "cli-scale", "9")
        assert done.returncode == 0, done.stderr
        assert "service/default/cli-scale has a scalable target allowing 1-3 tasks: desired count set to 3, not 9" in done.stderr
        assert desired() == 3
        done = cli(portside, "scale", "cli-scale", "0")
        assert "desired count set to 1, not 0" in done.stderr and desired() == 1
    finally:
        aas.deregister_scalable_target(
            ServiceNamespace="ecs", ResourceId="service/default/cli-scale", ScalableDimension="ecs:service:DesiredCount",
        )
    assert cli(portside, "scale", "cli-scale", "0").stderr == "" and desired() == 0

    missing = cli(portside, "scale", "no-such-service", "1")
    assert missing.returncode == 1 and "ServiceNotFoundException" in missing.stderr
    assert cli(portside, "scale", "cli-scale", "-1").returncode == 2


def test_exec_refuses_a_container_not_started_for_the_task(docker_client: Any, busybox_image: str) -> None:
    """An endpoint that answers DescribeTasks with another container of this engine (a hostile or
    confused API) does not get a command run in it."""
    other = docker_client.containers.run(busybox_image, ["sleep", "300"], detach=True)
    arn = "arn:aws:ecs:us-east-1:000000000000:task/default/0123456789abcdef0123456789abcdef"
    answer = json.dumps({"failures": [], "tasks": [{
        "taskArn": arn, "lastStatus": "RUNNING", "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/x",
        "containers": [{"name": "app", "lastStatus": "RUNNING", "runtimeId": other.id}],
    }]}).encode()

    class Endpoint(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "portside.cli.main", "exec", arn, "--endpoint", f"http://127.0.0.1:{endpoint.server_port}",
             "--", "touch", "/tmp/ran"],
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1
        assert f"container {other.id[:12]}" in done.stderr and "was not started for task 0123456789abcdef0123456789abcdef" in done.stderr
        assert other.exec_run(["test", "-e", "/tmp/ran"]).exit_code == 1  # nothing ran in there
    finally:
        endpoint.shutdown()
        endpoint.server_close()
        other.remove(force=True)
