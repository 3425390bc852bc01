"""Liveness of agents (core/liveness.py, control/liveness.py) with a clock the test moves, over a
real SQLite store: a lost instance's service tasks are marked STOPPED and replaced; nothing else is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.config import ServerConfig
from portside.control import instance_state
from portside.control.controllers.liveness import LivenessController
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core import liveness
from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.task import Task
from tests.support.agent_tasks import make_task
from tests.support.instances import Clock, register_host

REGION = "us-east-1"
TTL, GRACE = 15.0, 60.0
LOST, ALIVE, GONE = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    clock = Clock()
    cfg = ServerConfig(
        state_dir=tmp_path, api_port=0, extra={"cluster": "default"}, agent_ttl_s=TTL, agent_grace_s=GRACE
    )
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(cfg, store, "", clock=clock, started_at=clock.now)
    yield plane
    store.close()


def register(plane: ControlPlane, instance_id: str) -> str:
    return register_host(plane, instance_id)


def place(plane: ControlPlane, instance_arn: str, group: str) -> Task:
    task = make_task(instance_arn, group=group)
    task.last_status = TaskStatus.RUNNING
    task.containers[0].last_status = ContainerStatus.RUNNING
    plane.store.put_task(task)
    return task


def stored(plane: ControlPlane, task: Task) -> Task:
    found = plane.store.get_task(task.arn)
    assert found is not None
    return found


def test_connected_and_lost_are_bounded_by_ttl_and_grace() -> None:
    assert liveness.is_connected(100.0, 100.0 + TTL, TTL)
    assert not liveness.is_connected(100.0, 100.0 + TTL + 0.01, TTL)
    assert not liveness.is_lost(100.0, 100.0 + TTL + GRACE, TTL, GRACE)
    assert liveness.is_lost(100.0, 100.0 + TTL + GRACE + 0.01, TTL, GRACE)
    assert "i-0abc" in liveness.lost_reason("i-0abc", 75.4) and "75 s" in liveness.lost_reason("i-0abc", 75.4)


def test_a_lost_instances_service_tasks_are_stopped_and_nothing_else_is(plane: ControlPlane) -> None:
    lost, alive, gone = register(plane, LOST), register(plane, ALIVE), register(plane, GONE)
    instance_state.deregister_container_instance(plane, REGION, {"containerInstance": gone})
    service = place(plane, lost, "service:web")
    run_task = place(plane, lost, "family:web")
    elsewhere = place(plane, alive, "service:web")
    # Left by an orphaning deregistration: not liveness's business.
    on_inactive = place(plane, gone, "service:web")
    untouched = {t.arn: stored(plane, t).to_json() for t in (run_task, elsewhere, on_inactive)}
    heard: list[str] = []
    plane.task_watchers.append(lambda t: heard.append(t.arn))
    controller = LivenessController(plane)

    plane.clock.now += TTL + GRACE  # type: ignore[attr-defined]
    plane.agent_seen[alive] = plane.clock()
    controller.tick()
    # Silent for exactly TTL + grace: not yet lost.
    assert stored(plane, service).last_status is TaskStatus.RUNNING
    assert heard == []

    plane.clock.now += 1.0  # type: ignore[attr-defined]
    plane.agent_seen[alive] = plane.clock()
    revision = plane.store.task_revision()
    controller.tick()
    replaced = stored(plane, service)
    assert (replaced.last_status, replaced.desired_status, replaced.stop_code) == (
        TaskStatus.STOPPED,
        "STOPPED",
        "ServiceSchedulerInitiated",
    )
    assert replaced.stopped_reason is not None and LOST in replaced.stopped_reason
    assert replaced.containers[0].last_status is ContainerStatus.STOPPED
    assert replaced.containers[0].reason == replaced.stopped_reason
    assert plane.store.task_revision() == revision + 1  # its agent, if it returns, hears it is STOPPED
    assert heard == [service.arn]
    assert controller.lost_tasks == 1
    assert {
        arn: stored(plane, t).to_json() for arn, t in ((t.arn, t) for t in (run_task, elsewhere, on_inactive))
    } == untouched

    controller.tick()  # a lost host's tasks are stopped once
    assert heard == [service.arn] and controller.lost_tasks == 1


def test_an_instance_never_heard_since_the_server_started_counts_from_the_start(plane: ControlPlane) -> None:
    lost = register(plane, LOST)
    alive = register(plane, ALIVE)
    task = place(plane, lost, "service:web")
    plane.agent_seen.clear()  # a restarted server: every agent gets a full TTL and grace from the start
    plane.clock.now = plane.started_at + TTL + GRACE  # type: ignore[attr-defined]
    plane.agent_seen[alive] = plane.clock()
    LivenessController(plane).tick()
    assert stored(plane, task).last_status is TaskStatus.RUNNING
    plane.clock.now += 1  # type: ignore[attr-defined]
    plane.agent_seen[alive] = plane.clock()
    LivenessController(plane).tick()
    assert stored(plane, task).last_status is TaskStatus.STOPPED


def test_when_most_agents_fall_silent_at_once_nobody_is_evicted(plane: ControlPlane) -> None:
    """The control plane cut off from its hosts (or stopping) must not move copies off hosts it cannot hear."""
    first, second, third = register(plane, LOST), register(plane, ALIVE), register(plane, GONE)
    tasks = [place(plane, arn, "service:web") for arn in (first, second, third)]
    plane.clock.now += TTL + GRACE + 1  # type: ignore[attr-defined]
    plane.agent_seen[third] = plane.clock()  # one of three still calls: two silent > one calling
    controller = LivenessController(plane)
    controller.tick()
    assert [stored(plane, t).last_status for t in tasks] == [TaskStatus.RUNNING] * 3
    plane.agent_seen[second] = plane.clock()  # one silent, two calling: that one is lost
    controller.tick()
    assert [stored(plane, t).last_status for t in tasks] == [TaskStatus.STOPPED, TaskStatus.RUNNING, TaskStatus.RUNNING]


@pytest.mark.parametrize(
    ("lost", "others", "evict"),
    [(0, 3, False), (1, 0, False), (1, 1, True), (1, 2, True), (2, 1, False), (2, 2, True), (3, 2, False)],
)
def test_may_evict_up_to_as_many_silent_instances_as_calling_ones(lost: int, others: int, evict: bool) -> None:
    assert liveness.may_evict(lost, others) is evict
