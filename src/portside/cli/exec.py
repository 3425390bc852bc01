"""``portside exec TASK [CONTAINER] -- CMD...``: run a command in a task's container, through
Docker exec on the engine the container runs on.

The control plane never calls Docker, so this command does it itself: it resolves the task with
DescribeTasks (the container's ``runtimeId``, the task's container instance), then asks the Docker
Engine at ``--docker-host`` (default: the local one, ``$DOCKER_HOST`` or its socket) to exec in that
container. It refuses, naming the container instance, when the container is not on that engine, and
refuses a container whose ``com.amazonaws.ecs.task-arn`` label does not name the task (an answer
naming some other container of that engine is not trusted). It needs
what ``docker exec`` needs: access to that engine's API (the caller's own Docker permissions; the
portside API grants none).

With a terminal on stdin and stdout the command gets a TTY (raw mode, the terminal's size);
otherwise stdin is streamed to it until end of file and its stdout and stderr come back apart.
The command's exit status is this command's exit status.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

import click

from portside.agent.driver import LABEL_TASK_ARN
from portside.cli.calls import call, cluster_option, endpoint_option, fail
from portside.cli.client import make_client

#: How long to wait for Docker to report the exit code once the output stream has ended.
EXIT_CODE_WAIT_S = 10.0


class _CommandAfterDashes(click.Command):
    """Everything after the first ``--`` is the command to run, kept apart before click parses the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["exec_command"] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)


def resolve(client: Any, cluster: str, task_ref: str, container_name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task and its container to exec in, or fail saying why not."""
    answer = call(client, "describe_tasks", cluster=cluster, tasks=[task_ref])
    if not answer["tasks"]:
        reasons = ", ".join(f.get("reason", "") for f in answer.get("failures", []))
        fail(f"no task {task_ref} in cluster {cluster} ({reasons or 'MISSING'})")
    task = answer["tasks"][0]
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    if task["lastStatus"] != "RUNNING":
        fail(f"task {task_id} is {task['lastStatus']}, not RUNNING")
    containers = task.get("containers") or []
    names = ", ".join(c["name"] for c in containers)
    if container_name is None:
        if len(containers) != 1:
            fail(f"task {task_id} has containers {names}: name one, as in portside exec TASK CONTAINER -- CMD")
        container = containers[0]
    else:
        found = [c for c in containers if c["name"] == container_name]
        if not found:
            fail(f"task {task_id} has no container {container_name} (it has {names})")
        container = found[0]
    if not container.get("runtimeId") or container.get("lastStatus") != "RUNNING":
        fail(f"container {container['name']} of task {task_id} is {container.get('lastStatus', 'not started')}, not RUNNING")
    return task, container


@click.command(cls=_CommandAfterDashes)
@click.argument("task")
@click.argument("container", required=False)
@cluster_option
@endpoint_option
@click.option("--docker-host", default=None, metavar="URL",
              help="The Docker Engine of the task's host, e.g. ssh://user@host or tcp://host:2376; default: the local one.")
@click.pass_context
def exec_command(ctx: click.Context, task: str, container: str | None, cluster: str, endpoint: str,
                 docker_host: str | None) -> None:
    """Run a command in TASK's CONTAINER (the only one when not named): portside exec TASK [CONTAINER] -- CMD..."""
    import docker
    import docker.errors

    command = ctx.meta.get("exec_command")
    if not command:
        raise click.UsageError("give the command after --, as in: portside exec TASK [CONTAINER] -- sh")
    described, chosen = resolve(make_client("ecs", endpoint), cluster, task, container)
    task_id = described["taskArn"].rsplit("/", 1)[-1]
    where = docker_host or os.environ.get("DOCKER_HOST") or "the local Docker Engine"
    try:
        engine = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        found = engine.containers.get(chosen["runtimeId"])
    except docker.errors.NotFound:
        fail(
            f"container {chosen['name']} of task {task_id} ({chosen['runtimeId'][:12]}) is not on {where}: the task runs "
            f"on container instance {described.get('containerInstanceArn', '?')}; give --docker-host for that host's engine"
        )
    except docker.errors.DockerException as exc:
        fail(f"cannot reach {where}: {exc}")
    if found.labels.get(LABEL_TASK_ARN) != described["taskArn"]:
        # Only a container started for this task: not whatever else an answer names on this engine.
        fail(f"container {chosen['runtimeId'][:12]} on {where} was not started for task {task_id}; refusing to exec in it")
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        exec_id = engine.api.exec_create(found.id, command, stdin=True, tty=tty, stdout=True, stderr=True)["Id"]
        stream = engine.api.exec_start(exec_id, tty=tty, socket=True)
    except docker.errors.DockerException as exc:
        fail(f"docker exec in container {chosen['name']} of task {task_id}: {exc}")
    sock: socket.socket = stream._sock
    try:
        if tty:
            with _raw_terminal(sys.stdin.fileno()):  # Ctrl-C goes to the command, as a keystroke
                _resize(engine, exec_id)
                signal.signal(signal.SIGWINCH, lambda *_: _resize(engine, exec_id))
                _pump(sock, sys.stdin.fileno(), lambda data: _write(sys.stdout.buffer, data))
        else:
            _pump(sock, sys.stdin.fileno(), _Demultiplexer().feed)
    except KeyboardInterrupt:  # without a TTY, Ctrl-C stops this command; the exec'd one may run on
        sys.exit(130)
    sys.exit(_exit_code(engine, exec_id))


def _pump(sock: socket.socket, stdin_fd: int, output: Any) -> None:
    """Copy stdin to the exec and its output to ``output`` until the exec's stream ends; at the end
    of stdin, half-close so the command sees end of file."""
    watching: list[Any] = [sock, stdin_fd]
    while True:
        readable, _, _ = select.select(watching, [], [])
        if stdin_fd in readable:
            data = os.read(stdin_fd, 65536)
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)
                watching.remove(stdin_fd)
        if sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            output(data)


class _Demultiplexer:
    """Docker's multiplexed stream (8-byte headers: stream 1 stdout, 2 stderr; big-endian length) -> our stdout and stderr."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 8:
            kind, size = struct.unpack(">BxxxL", self.buffer[:8])
            if len(self.buffer) < 8 + size:
                return
            payload, self.buffer = self.buffer[8 : 8 + size], self.buffer[8 + size :]
            _write(sys.stderr.buffer if kind == 2 else sys.stdout.buffer, payload)


def _write(out: Any, data: bytes) -> None:
    out.write(data)
    out.flush()


def _exit_code(engine: Any, exec_id: str) -> int:
    deadline = time.monotonic() + EXIT_CODE_WAIT_S
    while True:
        state = engine.api.exec_inspect(exec_id)
        if not state.get("Running") or time.monotonic() > deadline:
            code = state.get("ExitCode")
            return int(code) if code is not None else 1
        time.sleep(0.05)


def _resize(engine: Any, exec_id: str) -> None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        engine.api.exec_resize(exec_id, height=size.lines, width=size.columns)
    except Exception:  # a terminal without a size, or an engine that refuses: the default size stays
        pass


class _raw_terminal:
    """The terminal in raw mode (keys go to the command as typed), restored on exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> None:
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)

    def __exit__(self, *exc: object) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
