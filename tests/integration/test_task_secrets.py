"""Task ``secrets`` on a real server and real containers: SSM parameters and Secrets Manager secrets reach
the container's environment, and nowhere else (docs/secrets.md).

A busybox container prints its environment and sleeps; the test reads what it printed through
Docker (the container's own log), then searches every file of the server's state directory (the
SQLite database and its -wal, the agent's state, the server's log) and the ECS API's answers for
the plaintext values: absent. Unknown references stop the task as ECS does.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import remove_server_containers
from tests.integration.test_tasks import describe
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

PRINT_ENV = ["sh", "-c", "env; echo END-OF-ENV; sleep 600"]


@pytest.fixture(scope="module")
def portside(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str) -> Any:
    server = PortsideProcess(tmp_path_factory.mktemp("task-secrets"))
    server.start()
    yield server
    try:
        ecs = server.client()
        for arn in ecs.list_tasks(desiredStatus="RUNNING").get("taskArns", []):
            ecs.stop_task(task=arn, reason="test teardown")
    finally:
        server.stop()
        remove_server_containers(docker_client, server)


def _run(ecs: Any, image: str, secrets: list[dict[str, str]], **container: Any) -> str:
    family = f"secrets-{uuid.uuid4().hex[:8]}"
    definition = {"name": "app", "image": image, "memory": 32, "stopTimeout": 1, "command": PRINT_ENV,
                  "secrets": secrets, **container}
    arn = ecs.register_task_definition(family=family, containerDefinitions=[definition])["taskDefinition"][
        "taskDefinitionArn"
    ]
    result = ecs.run_task(taskDefinition=arn)
    assert result["failures"] == []
    return str(result["tasks"][0]["taskArn"])


def _status(ecs: Any, arn: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        task = describe(ecs, [arn])[0]
        if status != "STOPPED" and task["lastStatus"] == "STOPPED":
            raise AssertionError(f"task stopped: {task.get('stoppedReason')}")
        return task if task["lastStatus"] == status else None

    return eventually(check, timeout=60, what=f"task {status}")


def _environment(docker_client: Any, task_arn: str) -> dict[str, str]:
    """What the task's container printed as its environment (read from Docker's log of it)."""
    def printed() -> str | None:
        [container] = docker_client.containers.list(all=True, filters={"label": f"com.amazonaws.ecs.task-arn={task_arn}"})
        text = container.logs().decode()
        return text if "END-OF-ENV" in text else None

    text = eventually(printed, timeout=30, what="the container's environment printed")
    return dict(line.split("=", 1) for line in text.split("END-OF-ENV")[0].splitlines() if "=" in line)


def _printed(container: Any) -> str | None:
    text = container.logs().decode()
    return text if "END-OF-ENV" in text else None


def _files_holding(directory: Path, needle: str) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_parameters_and_secrets_reach_the_environment_and_nothing_else(
    portside: PortsideProcess, docker_client: Any, busybox_image: str
) -> None:
    ecs, ssm, sm = portside.client(), portside.client("ssm"), portside.client("secretsmanager")
    token = uuid.uuid4().hex
    plain = {k: f"{k}:{uuid.uuid4().hex}" for k in ("secure", "string", "whole", "json", "previous")}
    ssm.put_parameter(Name=f"/t/{token}/secure", Value=plain["secure"], Type="SecureString")
    string_arn = f"arn:aws:ssm:us-east-1:000000000000:parameter/t/{token}/string"
    ssm.put_parameter(Name=f"/t/{token}/string", Value=plain["string"], Type="String")
    whole = sm.create_secret(Name=f"whole-{token}", SecretString=plain["whole"])["ARN"]
    keyed = sm.create_secret(Name=f"keyed-{token}", SecretString=json.dumps({"password": plain["previous"]}))["ARN"]
    sm.put_secret_value(SecretId=keyed, SecretString=json.dumps({"password": plain["json"], "port": 5432}))
    partial = keyed.rsplit("-", 1)[0]  # the ARN without its six-character suffix

    arn = _run(ecs, busybox_image, [
        {"name": "SECURE", "valueFrom": f"/t/{token}/secure"},
        {"name": "STRING", "valueFrom": string_arn},
        {"name": "WHOLE", "valueFrom": whole},
        {"name": "JSON_KEY", "valueFrom": f"{keyed}:password::"},
        {"name": "PORT", "valueFrom": f"{partial}:port::"},
        {"name": "PREVIOUS", "valueFrom": f"{keyed}:password:AWSPREVIOUS:"},
    ], environment=[{"name": "PLAIN", "value": "visible"}])
    task = _status(ecs, arn, "RUNNING")

    env = _environment(docker_client, arn)
    assert env["SECURE"] == plain["secure"]
    assert env["STRING"] == plain["string"]
    assert env["WHOLE"] == plain["whole"]
    assert env["JSON_KEY"] == plain["json"]
    assert env["PORT"] == "5432"
    assert env["PREVIOUS"] == plain["previous"]
    assert env["PLAIN"] == "visible"

    answers = json.dumps([task, ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])], default=str)
    secret_values = [plain["secure"], plain["whole"], plain["json"], plain["previous"]]
    assert _files_holding(portside.state_dir, arn.rsplit("/", 1)[1])  # the search does find what is there
    for value in secret_values:
        assert value not in answers
        assert _files_holding(portside.state_dir, value) == [], value  # database, -wal, agent state, server log
    ecs.stop_task(task=arn)
    _status(ecs, arn, "STOPPED")


@pytest.mark.parametrize(
    ("value_from", "reason"),
    [
        ("/t/never-put", "Fetching secret data from SSM Parameter Store in us-east-1: invalid parameters: /t/never-put"),
        (
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:never-created-AbCdEf",
            "Fetching secret data from AWS Secrets Manager in region us-east-1: secret "
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:never-created-AbCdEf: "
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
        ),
    ],
)
def test_an_unknown_reference_fails_the_task_with_ecs_reason(
    portside: PortsideProcess, busybox_image: str, value_from: str, reason: str
) -> None:
    ecs = portside.client()
    arn = _run(ecs, busybox_image, [{"name": "X", "valueFrom": value_from}])
    task = _status(ecs, arn, "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == reason


def test_a_missing_json_key_or_deleted_secret_fails_the_task(portside: PortsideProcess, busybox_image: str) -> None:
    ecs, sm = portside.client(), portside.client("secretsmanager")
    name = f"doc-{uuid.uuid4().hex[:8]}"
    secret = sm.create_secret(Name=name, SecretString=json.dumps({"user": "u"}))["ARN"]
    arn = _run(ecs, busybox_image, [{"name": "X", "valueFrom": f"{secret}:password::"}])
    task = _status(ecs, arn, "STOPPED")
    assert task["stoppedReason"].endswith("retrieved secret from Secrets Manager did not contain json key password")

    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    arn = _run(ecs, busybox_image, [{"name": "X", "valueFrom": secret}])
    task = _status(ecs, arn, "STOPPED")
    assert task["stopCode"] == "TaskFailedToStart"
    assert "marked for deletion" in task["stoppedReason"]


def test_a_server_killed_between_two_containers_gets_the_secrets_again_for_the_second(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    """The agent keeps secrets in memory only: after kill -9 between creating a task's two containers,
    the restarted server's first assignment answer carries them again, and the second container has its own."""
    server = PortsideProcess(tmp_path / "state")
    server.start(env={"PORTSIDE_CRASH_AT": "after-create:1"})
    try:
        ssm = server.client("ssm")
        values = {name: f"{name}:{uuid.uuid4().hex}" for name in ("first", "second")}
        for name, value in values.items():
            ssm.put_parameter(Name=f"/crash/{name}", Value=value, Type="SecureString")
        containers = [
            {"name": name, "image": busybox_image, "memory": 32, "stopTimeout": 1, "command": PRINT_ENV,
             "secrets": [{"name": "VALUE", "valueFrom": f"/crash/{name}"}]}
            for name in values
        ]
        ecs = server.client()
        td = ecs.register_task_definition(family="crash-secrets", containerDefinitions=containers)["taskDefinition"]
        try:
            ecs.run_task(taskDefinition=td["taskDefinitionArn"])
        except Exception:  # noqa: BLE001 - the server may die under the request
            pass
        assert server.wait_exit(60) == 137, server.log()
        server.start()
        ecs = server.client()
        [arn] = ecs.list_tasks(family="crash-secrets")["taskArns"]
        _status(ecs, arn, "RUNNING")
        for container in docker_client.containers.list(filters={"label": f"com.amazonaws.ecs.task-arn={arn}"}):
            name = container.labels["com.amazonaws.ecs.container-name"]
            text = eventually(lambda c=container: _printed(c), timeout=30, what=f"{name} printed its environment")
            assert f"VALUE={values[name]}\n" in text
        assert _files_holding(server.state_dir, values["first"]) == []
        assert _files_holding(server.state_dir, values["second"]) == []
        ecs.stop_task(task=arn)
        _status(ecs, arn, "STOPPED")
    finally:
        server.stop()
        remove_server_containers(docker_client, server)
