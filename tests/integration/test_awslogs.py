"""Tasks with the ``awslogs`` log driver: their output comes back through the CloudWatch Logs API.

Real server, real Docker Engine, real boto3: the container logs to Docker's ``local`` driver,
the server's own agent follows it and ships it over the agent protocol.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import remove_server_containers
from tests.integration.test_tasks import run, wait_stopped
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker


def awslogs_definition(image: str, group: str, script: str, family: str = "logger", **options: str) -> dict[str, Any]:
    return {
        "family": family,
        "containerDefinitions": [{
            "name": "app", "image": image, "memory": 32, "stopTimeout": 2,
            "command": ["sh", "-c", script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs", **options}},
        }],
    }


def stream_messages(logs: Any, group: str, stream: str) -> list[str]:
    try:
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    except logs.exceptions.ResourceNotFoundException:
        return []
    messages = [e["message"] for e in page["events"]]
    while True:
        token = page["nextForwardToken"]
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token)
        if page["nextForwardToken"] == token:
            return messages
        messages += [e["message"] for e in page["events"]]


def task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def test_output_lands_in_the_stream_ecs_names(portside: PortsideProcess, ecs: Any, docker_client: Any,
                                              busybox_image: str) -> None:
    logs = portside.client("logs")
    group = f"/ecs/{uuid.uuid4().hex[:8]}"
    script = "echo first-$((40+2)); echo to-stderr >&2; printf 'bad \\377 byte\\n'; printf 'bell \\007\\n'; sleep 60"
    [arn] = run(ecs, awslogs_definition(busybox_image, group, script, **{"awslogs-create-group": "true"}))
    stream = f"ecs/app/{task_id(arn)}"
    messages = eventually(lambda: (m := stream_messages(logs, group, stream)) and len(m) >= 4 and m,
                          timeout=60, what="the container's lines in its stream")
    # stdout in order; stderr is another pipe, so where its line falls is Docker's race (as on ECS)
    assert [m for m in messages if m != "to-stderr"] == ["first-42", "bad \ufffd byte", "bell \x07"]
    assert "to-stderr" in messages
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]] == [stream]
    task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    container = docker_client.api.inspect_container(task["containers"][0]["runtimeId"])
    assert container["HostConfig"]["LogConfig"]["Type"] == "local"  # never Docker's own awslogs driver
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert "first-42" not in str(definition) and "first-42" not in str(task)  # lines are only in the logs
    ecs.stop_task(task=arn)
    wait_stopped(ecs, [arn])


def test_a_missing_group_fails_the_task_as_on_ecs(ecs: Any, portside: PortsideProcess, busybox_image: str) -> None:
    group = f"/ecs/missing-{uuid.uuid4().hex[:8]}"
    [arn] = run(ecs, awslogs_definition(busybox_image, group, "echo never; sleep 60", family="nogroup"))
    [task] = wait_stopped(ecs, [arn])
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("CannotStartContainerError:")
    assert "ResourceNotFoundException: The specified log group does not exist." in task["stoppedReason"]
    assert task["containers"][0]["reason"] == task["stoppedReason"]
    assert portside.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_options_portside_does_not_apply_are_refused_by_name(ecs: Any, busybox_image: str) -> None:
    definition = awslogs_definition(busybox_image, "/ecs/x", "true", family="badopts",
                                    **{"awslogs-multiline-pattern": "^INFO"})
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    with pytest.raises(ecs.exceptions.InvalidParameterException) as exc:
        ecs.run_task(taskDefinition=arn)
    assert "logConfiguration.options.awslogs-multiline-pattern" in str(exc.value)


LINES = 160


def test_nothing_lost_nothing_twice_across_a_server_kill(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    """A container prints a numbered line every ~50 ms; the server is SIGKILLed mid-way and restarted."""
    server = PortsideProcess(tmp_path / "state")
    server.start()
    try:
        ecs, logs = server.client(), server.client("logs")
        group = "/ecs/numbers"
        logs.create_log_group(logGroupName=group)
        script = f"i=1; while [ $i -le {LINES} ]; do echo line $i; i=$((i+1)); usleep 50000; done; sleep 60"
        [arn] = run(ecs, awslogs_definition(busybox_image, group, script, family="numbers"))
        stream = f"ecs/app/{task_id(arn)}"
        eventually(lambda: len(stream_messages(logs, group, stream)) >= 20, timeout=60, what="the first lines")
        server.kill9()
        assert not api_answers(server)
        server.start()
        logs = server.client("logs")
        expected = [f"line {i}" for i in range(1, LINES + 1)]
        messages = eventually(lambda: (m := stream_messages(logs, group, stream)) and len(m) >= LINES and m,
                              timeout=90, what=f"all {LINES} lines")
        assert messages == expected  # every number exactly once, in order
        [cursors] = list((tmp_path / "state").rglob("log-cursors.json"))
        assert cursors.stat().st_mode & 0o777 == 0o600
    finally:
        _stop_all(server)
        server.stop()
        remove_server_containers(docker_client, server)


def api_answers(server: PortsideProcess) -> bool:
    try:
        server.client("logs").describe_log_groups()
    except Exception:
        return False
    return True


def _stop_all(server: PortsideProcess) -> None:
    try:
        ecs = server.client()
        for arn in ecs.list_tasks(desiredStatus="RUNNING").get("taskArns", []):
            ecs.stop_task(task=arn)
    except Exception:
        pass


def test_long_lines_are_joined_from_dockers_pieces_and_split_at_the_event_limit(
    portside: PortsideProcess, ecs: Any, busybox_image: str
) -> None:
    logs = portside.client("logs")
    group = f"/ecs/long-{uuid.uuid4().hex[:8]}"
    # 20,000 bytes: Docker hands it over in 16 KiB pieces; 300,000 bytes: more than one CloudWatch event.
    script = ("head -c 20000 /dev/zero | tr '\\0' a; echo; head -c 300000 /dev/zero | tr '\\0' b; echo; "
              "echo done-$((1+1)); sleep 60")
    [arn] = run(ecs, awslogs_definition(busybox_image, group, script, family="longlines",
                                        **{"awslogs-create-group": "true"}))
    stream = f"ecs/app/{task_id(arn)}"
    try:
        messages = eventually(lambda: (m := stream_messages(logs, group, stream)) and m[-1] == "done-2" and m,
                              timeout=60, what="the long lines and the last one")
    finally:
        ecs.stop_task(task=arn)
    assert messages[0] == "a" * 20_000
    assert messages[1:-1] == ["b" * 262_118, "b" * (300_000 - 262_118)]


def test_a_container_with_a_tty_is_shipped_line_by_line(portside: PortsideProcess, ecs: Any, busybox_image: str) -> None:
    logs = portside.client("logs")
    group = f"/ecs/tty-{uuid.uuid4().hex[:8]}"
    definition = awslogs_definition(busybox_image, group, "echo tty-$((2*3)); echo again-$((2*3)); sleep 60",
                                    family="ttylogs", **{"awslogs-create-group": "true"})
    definition["containerDefinitions"][0]["pseudoTerminal"] = True
    [arn] = run(ecs, definition)
    try:
        messages = eventually(lambda: (m := stream_messages(logs, group, f"ecs/app/{task_id(arn)}")) and len(m) >= 2 and m,
                              timeout=60, what="the TTY's lines")
    finally:
        ecs.stop_task(task=arn)
    assert messages == ["tty-6", "again-6"]
