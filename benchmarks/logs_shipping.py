"""Time from RunTask until every line of an awslogs container is readable through GetLogEvents,
beside plain Docker: ``docker run --log-driver local`` until ``docker logs`` shows every line.

Run: ``python benchmarks/logs_shipping.py [--lines 100000] [--repeats 3]`` (as a user who may
talk to the Docker Engine; the busybox image is built locally ``FROM scratch``).

The container runs ``seq 1 N`` and then sleeps. portside: one ``portside server`` (own temporary
state dir); t0, RunTask, then GetLogEvents (the newest event) every 0.2 s until it is ``N``; every
event is then read back (FilterLogEvents) and checked to be 1..N in order. docker: t0, ``docker
run -d --log-driver local``, then ``docker logs --tail 1`` every 0.2 s until it prints ``N``.
Printed: seconds for each, lines per second, and the ratio portside / docker.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from portside.images import build_busybox_web_image  # noqa: E402
from tests.support.server import PortsideProcess  # noqa: E402

POLL_S = 0.2
TIMEOUT_S = 600


def portside_run(server: PortsideProcess, image: str, lines: int, n: int) -> float:
    ecs, logs = server.client(), server.client("logs")
    group = f"/bench/{n}"
    definition = {"family": "bench-logs", "containerDefinitions": [{
        "name": "app", "image": image, "memory": 32, "command": ["sh", "-c", f"seq 1 {lines}; sleep 600"],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": group, "awslogs-stream-prefix": "b", "awslogs-create-group": "true"}}}]}
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    t0 = time.monotonic()
    task = ecs.run_task(taskDefinition=arn)["tasks"][0]["taskArn"]
    stream = f"b/app/{task.rsplit('/', 1)[1]}"
    while time.monotonic() - t0 < TIMEOUT_S:
        try:
            page = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)
            if page["events"] and page["events"][-1]["message"] == str(lines):
                break
        except logs.exceptions.ResourceNotFoundException:
            pass
        time.sleep(POLL_S)
    elapsed = time.monotonic() - t0
    messages: list[str] = []
    params = {"logGroupName": group, "limit": 10_000}
    while True:
        page = logs.filter_log_events(**params)
        messages += [e["message"] for e in page["events"]]
        if not page.get("nextToken"):
            break
        params["nextToken"] = page["nextToken"]
    assert messages == [str(i) for i in range(1, lines + 1)], "lines lost, repeated or out of order"
    ecs.stop_task(task=task)
    return elapsed


def docker_run(client: docker.DockerClient, image: str, lines: int) -> float:
    t0 = time.monotonic()
    container = client.containers.run(image, ["sh", "-c", f"seq 1 {lines}; sleep 600"], detach=True,
                                      log_config={"type": "local", "config": {}}, labels={"portside.bench": "1"})
    try:
        while time.monotonic() - t0 < TIMEOUT_S:
            last = subprocess.run(["docker", "logs", "--tail", "1", container.id], capture_output=True, text=True)
            if last.stdout.strip() == str(lines):
                break
            time.sleep(POLL_S)
        return time.monotonic() - t0
    finally:
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env()
    image = build_busybox_web_image(client)
    with tempfile.TemporaryDirectory() as folder:
        server = PortsideProcess(Path(folder) / "state")
        server.start()
        try:
            ours = [portside_run(server, image, args.lines, n) for n in range(args.repeats)]
        finally:
            server.stop()
    theirs = [docker_run(client, image, args.lines) for _ in range(args.repeats)]
    mine, peer = statistics.median(ours), statistics.median(theirs)
    print(f"{args.lines} lines, median of {args.repeats}:")
    print(f"  portside awslogs -> GetLogEvents : {mine:6.2f} s ({args.lines / mine:,.0f} lines/s)")
    print(f"  docker local     -> docker logs  : {peer:6.2f} s ({args.lines / peer:,.0f} lines/s)")
    print(f"  ratio portside / docker          : {mine / peer:6.2f}")


if __name__ == "__main__":
    main()
