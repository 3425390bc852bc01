"""A replacement counts as healthy only once its target group's slow-start ramp is over (beyond ECS).

The service controller's health verdict for a task with load balancer targets (control/
controllers/services.py ``_health``), over a real store, with a load balancer runtime that answers
the health views given here: healthy and warming is not healthy yet, so no old copy is stopped
for it; healthy and past the ramp is; the health state machine and the ramp themselves are the
proxy's (tested in tests/integration/test_proxy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control.plane import ControlPlane
from portside.control.controllers.services import ServiceController
from portside.control.store import Store
from portside.core.lb.runtime import HealthView
from portside.core.lifecycle import TaskStatus
from tests.support.agent_tasks import make_task

GROUP = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"


class Views:
    """The part of the LbRuntime protocol the controller reads here: one answer for every target."""

    def __init__(self, view: HealthView) -> None:
        self.view = view

    def target_health(self, target_group_arn: str, target_id: str, port: int) -> HealthView:
        return self.view


@pytest.fixture
def controller(tmp_path: Path) -> Any:
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(ServerConfig(state_dir=tmp_path), store, "arn:aws:ecs:us-east-1:000000000000:container-instance/default/x")
    yield ServiceController(plane)
    store.close()


@pytest.mark.parametrize(
    ("view", "verdict"),
    [
        (HealthView("healthy"), True),
        (HealthView("healthy", warming=True), None),
        (HealthView("initial"), None),
        (HealthView("unhealthy", "Target.FailedHealthChecks"), False),
    ],
)
def test_a_target_in_its_slow_start_ramp_is_not_healthy_yet(controller: Any, view: HealthView, verdict: Any) -> None:
    controller.plane.lb = Views(view)
    task = make_task(controller.plane.instance_arn, group="service:web")
    task.advance(TaskStatus.RUNNING, 100.0)
    task.lb_targets = [[GROUP, "i-0123456789abcdef0", 32768]]
    body = {"loadBalancers": [{"targetGroupArn": GROUP, "containerName": "web", "containerPort": 80}]}
    healthy, _reason = controller._health(body, task, 200.0)
    assert healthy is verdict
