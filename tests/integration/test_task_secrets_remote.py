"""Task ``secrets`` for an agent on another host: the values cross the agent link (HTTP, SigV4) in the
PollAssignments answer only, reach the container on that host's own Docker Engine, and are written
neither to the agent's state directory nor to the server's (docs/secrets.md)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_many_hosts import KEY, SECRET, WORKERS, Agent, credentials  # noqa: F401  (a fixture)
from tests.integration.test_task_secrets import PRINT_ENV, _files_holding
from tests.support.hosts import ROOT_ADDRESS
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]


def test_a_remote_agent_gets_the_values_and_keeps_none(
    make_cluster: Any, tmp_path: Path, credentials: Path, busybox_image: str  # noqa: F811
) -> None:
    [host] = make_cluster(1).hosts
    server = PortsideProcess(tmp_path / "server", "--credentials", str(credentials), api_host=ROOT_ADDRESS)
    agent: Agent | None = None
    try:
        server.start()
        agent = Agent(host, server.endpoint, credentials, "us-east-1a")
        ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        ssm = server.client("ssm", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        value = f"remote:{uuid.uuid4().hex}"
        ssm.put_parameter(Name="/remote/token", Value=value, Type="SecureString")

        def worker() -> bool:
            arns = ecs.list_container_instances()["containerInstanceArns"]
            described = ecs.describe_container_instances(containerInstances=arns)["containerInstances"]
            return any({"name": "role", "value": "worker"} in i["attributes"] and i["agentConnected"] for i in described)

        eventually(worker, 60, 0.5, "the remote agent registered")
        definition = {"name": "app", "image": busybox_image, "memory": 32, "stopTimeout": 1, "command": PRINT_ENV,
                      "secrets": [{"name": "TOKEN", "valueFrom": "/remote/token"}]}
        td = ecs.register_task_definition(family="remote-secrets", containerDefinitions=[definition])
        arn = ecs.run_task(taskDefinition=td["taskDefinition"]["taskDefinitionArn"],
                           placementConstraints=WORKERS)["tasks"][0]["taskArn"]

        def printed() -> str | None:
            found = host.docker().containers.list(all=True, filters={"label": f"com.amazonaws.ecs.task-arn={arn}"})
            text = found[0].logs().decode() if found else ""
            return text if "END-OF-ENV" in text else None

        env = eventually(printed, 90, 0.5, "the remote container printed its environment")
        assert f"TOKEN={value}\n" in env
        assert _files_holding(host.folder / "agent", arn.rsplit("/", 1)[1])  # the agent's state is searched
        assert _files_holding(host.folder / "agent", value) == []
        assert _files_holding(server.state_dir, value) == []
        ecs.stop_task(task=arn)
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
