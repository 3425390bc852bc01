"""``portside demo``: the main job in one command.

Builds the demo web image locally when it is missing (no registry), starts a
portside server when none answers on the endpoint, runs a task definition of
several copies on dynamic host ports, shows a live table of tasks, host ports
and which copy answers, and on Ctrl-C (or after PORTSIDE_DEMO_EXIT_AFTER
seconds) stops everything it created. With PORTSIDE_DEMO_CHECK=1 it exits
non-zero unless every copy answered on its own port and nothing it labelled is
left behind — CI runs it that way.
"""

from __future__ import annotations

import os
import signal
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

DEMO_FAMILY = "portside-demo"
DEMO_COPIES = 3
SERVER_START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


def demo_task_definition(image: str) -> dict[str, Any]:
    return {
        "family": DEMO_FAMILY,
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


def run_demo(endpoint: str, state_dir: Path, copies: int, exit_after: float | None, check: bool) -> int:
    from portside.agent.driver import LABEL_FAMILY
    from portside.images import build_busybox_web_image

    import docker

    docker_client = docker.from_env()
    click.echo("demo: building the demo image (FROM scratch + busybox) if missing ...")
    image = build_busybox_web_image(docker_client)
    server = _ensure_server(endpoint, state_dir)
    ecs = make_client("ecs", endpoint)
    task_arns: list[str] = []
    answered: dict[str, str] = {}
    interrupted = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    try:
        definition = ecs.register_task_definition(**demo_task_definition(image))["taskDefinition"]
        result = ecs.run_task(taskDefinition=definition["taskDefinitionArn"], count=copies, startedBy="portside-demo")
        task_arns = [t["taskArn"] for t in result["tasks"]]
        for failure in result["failures"]:
            click.echo(f"demo: a copy was not placed: {failure.get('reason')}", err=True)
        started = time.monotonic()
        last_print = 0.0
        while not interrupted and (exit_after is None or time.monotonic() - started < exit_after):
            tasks = ecs.describe_tasks(tasks=task_arns)["tasks"] if task_arns else []
            rows = []
            for task in tasks:
                port, answer = _probe(task)
                if answer:
                    answered[task["taskArn"]] = answer
                rows.append([task["taskArn"].rsplit("/", 1)[-1][:12], task["lastStatus"], port, answer or "-"])
            if sys.stdout.isatty():
                click.echo("\x1b[2J\x1b[H", nl=False)
                click.echo(_screen(rows, endpoint))
            elif time.monotonic() - last_print >= 5:
                click.echo(_screen(rows, endpoint))
                last_print = time.monotonic()
            time.sleep(1)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        click.echo("demo: stopping the copies ...")
        _stop_all(ecs, task_arns)
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    leftovers = docker_client.containers.list(all=True, filters={"label": f"{LABEL_FAMILY}={DEMO_FAMILY}"})
    distinct = len(set(answered.values()))
    click.echo(f"demo: {distinct} distinct copies answered on their own host ports; {len(leftovers)} containers left")
    if check and (distinct < copies or leftovers):
        return 1
    return 0


def _probe(task: dict[str, Any]) -> tuple[str, str]:
    for container in task.get("containers", []):
        for binding in container.get("networkBindings", []):
            address = f"{binding['bindIP']}:{binding['hostPort']}"
            try:
                with urllib.request.urlopen(f"http://{address}/cgi-bin/whoami", timeout=2) as reply:
                    return address, reply.read().decode().splitlines()[0]
            except (urllib.error.URLError, OSError, IndexError):
                return address, ""
    return "-", ""


def _screen(rows: list[list[str]], endpoint: str) -> str:
    header = f"portside demo — {len(rows)} copies of {DEMO_FAMILY} on dynamic host ports (API {endpoint}); Ctrl-C stops\n"
    return header + table(["TASK", "STATUS", "HOST PORT", "ANSWERED BY (container hostname)"], rows) + "\n"


def _stop_all(ecs: Any, task_arns: list[str]) -> None:
    for arn in task_arns:
        try:
            ecs.stop_task(task=arn, reason="portside demo finished")
        except Exception as exc:  # keep stopping the others; report what failed
            click.echo(f"demo: could not stop {arn}: {exc}", err=True)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while task_arns and time.monotonic() < deadline:
        tasks = ecs.describe_tasks(tasks=task_arns)["tasks"]
        if all(t["lastStatus"] == "STOPPED" for t in tasks):
            return
        time.sleep(0.5)


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
