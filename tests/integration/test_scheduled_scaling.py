"""Scheduled scaling end to end: a real server whose scheduled-action clock the test moves forward
(``PORTSIDE_TEST_SCHEDULE_CLOCK_FILE``, docs/scheduled-scaling.md), a real service on the Docker
Engine, the action put with the AWS CLI and read back with it and boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

CLOCK_ENV = "PORTSIDE_TEST_SCHEDULE_CLOCK_FILE"
RESOURCE = "service/default/sched-web"
DIMENSION = "ecs:service:DesiredCount"


@pytest.fixture
def server(tmp_path: Path, docker_client: Any) -> Iterator[tuple[PortsideProcess, Path]]:
    state = tmp_path / "state"
    state.mkdir()
    clock = state / "test-clock"
    clock.write_text("0")
    process = PortsideProcess(state, env={CLOCK_ENV: str(clock)})
    try:
        process.start()
        yield process, clock
    finally:
        try:
            ecs = process.client()
            ecs.update_service(cluster="default", service="sched-web", desiredCount=0)
            ecs.delete_service(cluster="default", service="sched-web", force=True)
        except Exception:
            pass
        process.stop()
        remove_server_containers(docker_client, process)


def aws_cli(endpoint: str, tmp_path: Path, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="anything", AWS_SECRET_ACCESS_KEY="anything", AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"), AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="",
    )
    done = subprocess.run(
        [sys.executable, "-m", "awscli", "application-autoscaling", "--endpoint-url", endpoint, "--region", "us-east-1",
         "--output", "json", *args],
        capture_output=True, text=True, env=env, timeout=90, check=False,
    )
    assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def running(ecs: Any) -> int:
    return int(ecs.describe_services(cluster="default", services=["sched-web"])["services"][0]["runningCount"])


def test_a_scheduled_action_scales_a_real_service_when_the_clock_passes_its_time(
    server: tuple[PortsideProcess, Path], busybox_image: str, tmp_path: Path
) -> None:
    process, clock = server
    ecs, aas = process.client(), process.client("application-autoscaling")
    ecs.register_task_definition(
        family="sched-web", containerDefinitions=[{"name": "app", "image": busybox_image, "memory": 32, "essential": True}]
    )
    ecs.create_service(cluster="default", serviceName="sched-web", taskDefinition="sched-web", desiredCount=1)
    aas.register_scalable_target(
        ServiceNamespace="ecs", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MinCapacity=1, MaxCapacity=4
    )
    eventually(lambda: running(ecs) == 1, 90, what="one task running")

    # two hours from now, as a wall-clock time in New York
    zone = ZoneInfo("America/New_York")
    when = (datetime.now(zone) + timedelta(hours=2)).replace(microsecond=0)
    schedule = f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"
    aws_cli(
        process.endpoint, tmp_path, "put-scheduled-action", "--service-namespace", "ecs", "--resource-id", RESOURCE,
        "--scalable-dimension", DIMENSION, "--scheduled-action-name", "busy-hours", "--schedule", schedule,
        "--timezone", "America/New_York", "--scalable-target-action", "MinCapacity=3,MaxCapacity=6",
    )
    [action] = aws_cli(process.endpoint, tmp_path, "describe-scheduled-actions", "--service-namespace", "ecs")["ScheduledActions"]
    assert action["Schedule"] == schedule and action["ScalableTargetAction"] == {"MinCapacity": 3, "MaxCapacity": 6}

    clock.write_text(str(3 * 3600))  # the scheduled-action clock is now an hour past the action
    eventually(
        lambda: ecs.describe_services(cluster="default", services=["sched-web"])["services"][0]["desiredCount"] == 3,
        60, what="desired count 3",
    )
    [target] = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (3, 6)
    causes = [a["Cause"] for a in aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]]
    assert "scheduled action name busy-hours was triggered" in causes
    assert "minimum capacity was set to 3" in causes
    eventually(lambda: running(ecs) == 3, 120, what="three tasks running")

    aws_cli(
        process.endpoint, tmp_path, "delete-scheduled-action", "--service-namespace", "ecs", "--resource-id", RESOURCE,
        "--scalable-dimension", DIMENSION, "--scheduled-action-name", "busy-hours",
    )
    assert aas.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"] == []


@pytest.mark.parametrize("where", ["outside", "not-loopback"])
def test_the_test_clock_is_refused_outside_a_tests_setting(tmp_path: Path, where: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    clock = (tmp_path / "clock") if where == "outside" else (state / "clock")
    clock.write_text("0")
    args = ["--api", "0.0.0.0:1"] if where == "not-loopback" else ["--api", "127.0.0.1:1"]
    if where == "not-loopback":
        credentials = tmp_path / "credentials"
        credentials.write_text("[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = secret\n")
        credentials.chmod(0o600)
        args += ["--credentials", str(credentials)]
    done = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--state-dir", str(state), *args],
        env={**os.environ, CLOCK_ENV: str(clock)}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert "PORTSIDE_TEST_SCHEDULE_CLOCK_FILE" in done.stderr and "is for tests" in done.stderr
