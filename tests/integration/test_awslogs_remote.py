"""awslogs on another host: `portside agent` in a namespace host with its own Docker Engine ships a
container's output over the agent protocol (HTTP, SigV4), and a restart of that agent mid-way loses
and repeats no line."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_awslogs import awslogs_definition, stream_messages, task_id
from tests.integration.test_many_hosts import KEY, SECRET, WORKERS, Agent
from tests.integration.test_many_hosts import credentials as credentials  # noqa: F401  (fixture)
from tests.support.hosts import ROOT_ADDRESS
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

LINES = 120


def test_a_remote_agent_ships_lines_and_an_agent_restart_loses_and_repeats_none(
    make_cluster: Any, tmp_path: Path, credentials: Path, busybox_image: str  # noqa: F811
) -> None:
    [host] = make_cluster(1).hosts
    server = PortsideProcess(tmp_path / "server", "--credentials", str(credentials), api_host=ROOT_ADDRESS)
    agent: Agent | None = None
    try:
        server.start()
        agent = Agent(host, server.endpoint, credentials, "us-east-1a")
        ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        logs = server.client("logs", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        eventually(lambda: any({"name": "role", "value": "worker"} in i["attributes"] and i["agentConnected"]
                               for i in ecs.describe_container_instances(
                                   containerInstances=ecs.list_container_instances()["containerInstanceArns"]
                               )["containerInstances"]), 60, 0.5, "the agent registered")
        script = f"i=1; while [ $i -le {LINES} ]; do echo n-$i; i=$((i+1)); usleep 50000; done; sleep 60"
        definition = awslogs_definition(busybox_image, "/remote/numbers", script, family="remote",
                                        **{"awslogs-create-group": "true"})
        arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        [task] = ecs.run_task(taskDefinition=arn, placementConstraints=WORKERS)["tasks"]
        stream = f"ecs/app/{task_id(task['taskArn'])}"
        eventually(lambda: len(stream_messages(logs, "/remote/numbers", stream)) >= 15, 60, 0.5, "the first lines")
        agent.stop(signal.SIGKILL)  # the container keeps writing into Docker's files meanwhile
        agent.start()
        messages = eventually(lambda: (m := stream_messages(logs, "/remote/numbers", stream)) and len(m) >= LINES and m,
                              90, 0.5, f"all {LINES} lines")
        assert messages == [f"n-{i}" for i in range(1, LINES + 1)]
        ecs.stop_task(task=task["taskArn"])
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
