"""Tasks as the control plane stores them, for tests of the agent protocol without a RunTask behind them."""

from __future__ import annotations

import uuid

from portside.core import arns
from portside.core.task import Container, PortPlan, Task

REGION = "us-east-1"
ACCOUNT = "000000000000"


def make_task(
    instance_arn: str = "",
    *,
    cluster: str = "default",
    group: str | None = None,
    containers: tuple[str, ...] = ("web",),
    dynamic: bool = True,
) -> Task:
    """A PENDING task of family ``web`` on ``instance_arn``; each container maps port 80 (dynamic or 8080)."""
    task_id = uuid.uuid4().hex
    return Task(
        arn=arns.task_arn(REGION, ACCOUNT, cluster, task_id),
        id=task_id,
        region=REGION,
        cluster=cluster,
        cluster_arn=arns.cluster_arn(REGION, ACCOUNT, cluster),
        task_definition_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1",
        family="web",
        revision=1,
        network_mode="bridge",
        container_instance_arn=instance_arn,
        containers=[
            Container(
                name=name,
                container_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{cluster}/{task_id}/{name}",
                image="nginx",
                docker_name=f"ecs-web-1-{name}-{task_id}",
                ports=[PortPlan(container_port=80, host_port=None if dynamic else 8080, dynamic=dynamic)],
            )
            for name in containers
        ],
        cpu=128,
        memory=128,
        created_at=1_700_000_000.0,
        group=group or "family:web",
    )
