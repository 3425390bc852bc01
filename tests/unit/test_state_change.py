"""core/state_change.py: who writes which fact of a task (docs/agent-protocol.md), as a table of merges.

The control plane folds an agent's report into its task with ``apply_state_change``; the agent folds
an assignment into its copy with ``apply_assignment``. Each side takes only the facts it owns, and
``lastStatus`` only moves forward, so reports may repeat, cross or arrive late.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.core.lifecycle import ContainerStatus, TaskStatus
from portside.core.state_change import (
    agent_desired_status,
    apply_assignment,
    apply_state_change,
    needs_host_ports,
    new_agent_task,
    task_state_change,
)
from portside.core.task import Task
from tests.support.agent_tasks import make_task

NOW = 1_700_000_100.0
INSTANCE = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/" + "a" * 32


def report(task: Task, status: str = "RUNNING", **container: Any) -> dict[str, Any]:
    """An agent's report of ``task`` now: its one container ``web`` in ``container_status``."""
    web = {
        "containerName": "web",
        "runtimeId": "3f2c",
        "status": container.pop("container_status", status if status != "STOPPING" else "RUNNING"),
        "exitCode": None,
        "reason": None,
        "networkBindings": [
            {"bindIP": "10.0.0.2", "containerPort": 80, "hostPort": 49162, "protocol": "tcp"}
        ],
        "healthStatus": "HEALTHY",
        "hostPorts": [{"hostPort": 49162, "hostPortRange": None}],
        "privateIpv4Address": None,
        "bridgeIpv4Address": "172.17.0.5",
    }
    web.update(container)
    return {
        "cluster": task.cluster_arn,
        "task": task.arn,
        "status": status,
        "containers": [web],
        "timestamps": {"pullStartedAt": NOW - 5, "startedAt": NOW - 1},
    }


def stored_task(**kwargs: Any) -> Task:
    return make_task(INSTANCE, **kwargs)


# -- the agent's facts are taken


def test_a_report_takes_every_fact_the_agent_owns() -> None:
    task = stored_task()
    assert apply_state_change(task, report(task), NOW) is True
    web = task.containers[0]
    assert task.last_status is TaskStatus.RUNNING
    assert (web.last_status, web.docker_id, web.health_status, web.bridge_ip) == (
        ContainerStatus.RUNNING,
        "3f2c",
        "HEALTHY",
        "172.17.0.5",
    )
    assert web.network_bindings == [
        {"bindIP": "10.0.0.2", "containerPort": 80, "hostPort": 49162, "protocol": "tcp"}
    ]
    assert web.ports[0].host_port == 49162
    assert task.timestamps["pullStartedAt"] == NOW - 5
    assert task.timestamps["startedAt"] == NOW - 1  # the agent's stamp, not the time the report arrived


def test_an_exit_code_and_reason_are_taken() -> None:
    task = stored_task()
    apply_state_change(
        task, report(task, "RUNNING", container_status="STOPPED", exitCode=137, reason="OOM"), NOW
    )
    assert (task.containers[0].last_status, task.containers[0].exit_code, task.containers[0].reason) == (
        ContainerStatus.STOPPED,
        137,
        "OOM",
    )


# -- the control plane's facts are never taken


def test_a_report_never_changes_desired_status_or_load_balancer_targets() -> None:
    task = stored_task()
    task.lb_targets = [["arn:tg", "i-1", 49162]]
    change = report(task)
    change.update(
        {"desiredStatus": "STOPPED", "lbTargets": [], "lb_targets": [], "desired_status": "STOPPED"}
    )
    apply_state_change(task, change, NOW)
    assert task.desired_status == "RUNNING"
    assert task.lb_targets == [["arn:tg", "i-1", 49162]]


def test_the_agents_stop_code_is_taken_while_the_control_plane_wants_the_task_running() -> None:
    task = stored_task()
    change = report(task, "STOPPING")
    change.update(stopCode="EssentialContainerExited", reason="Essential container in task exited")
    apply_state_change(task, change, NOW)
    assert (task.desired_status, task.stop_code, task.stopped_reason) == (
        "STOPPED",
        "EssentialContainerExited",
        "Essential container in task exited",
    )


def test_the_agents_stop_code_is_not_taken_once_the_control_plane_stopped_the_task() -> None:
    task = stored_task()
    task.request_stop("UserInitiated", "Task stopped by user", NOW - 10)
    change = report(task, "STOPPING")
    change.update(stopCode="EssentialContainerExited", reason="Essential container in task exited")
    apply_state_change(task, change, NOW)
    assert (task.stop_code, task.stopped_reason) == ("UserInitiated", "Task stopped by user")
    assert task.timestamps["stoppingAt"] == NOW - 10


# -- forward only, first stamp wins


def test_a_late_running_report_after_stopping_changes_nothing() -> None:
    task = stored_task()
    apply_state_change(task, report(task, "STOPPING", container_status="STOPPED", exitCode=0), NOW)
    before = task.to_json()
    late = report(task, "RUNNING", container_status="RUNNING")
    late["containers"][0]["runtimeId"] = "3f2c"
    assert apply_state_change(task, late, NOW + 1) is False
    assert task.to_json() == before
    assert task.last_status is TaskStatus.STOPPING
    assert task.containers[0].last_status is ContainerStatus.STOPPED


def test_the_first_timestamp_wins() -> None:
    task = stored_task()
    apply_state_change(task, report(task), NOW)
    again = report(task)
    again["timestamps"] = {"pullStartedAt": NOW + 50, "startedAt": NOW + 50}
    apply_state_change(task, again, NOW + 60)
    assert (task.timestamps["pullStartedAt"], task.timestamps["startedAt"]) == (NOW - 5, NOW - 1)


def test_timestamps_the_agent_does_not_own_are_not_taken() -> None:
    task = stored_task()
    change = report(task, "PENDING", container_status="PENDING")
    change["timestamps"] = {"createdAt": 1.0, "stoppingAt": True, "pullStartedAt": "soon"}
    apply_state_change(task, change, NOW)
    assert "stoppingAt" not in task.timestamps and "pullStartedAt" not in task.timestamps
    assert task.created_at == 1_700_000_000.0


# -- host ports


def test_host_ports_are_taken_for_a_dynamic_mapping_only() -> None:
    static = stored_task(dynamic=False)
    apply_state_change(static, report(static), NOW)
    assert static.containers[0].ports[0].host_port == 8080
    dynamic = stored_task()
    apply_state_change(dynamic, report(dynamic), NOW)
    assert dynamic.containers[0].ports[0].host_port == 49162


def test_host_ports_of_another_shape_are_not_taken() -> None:
    task = stored_task()
    apply_state_change(task, report(task, hostPorts=[{"hostPort": 1}, {"hostPort": 2}]), NOW)
    assert task.containers[0].ports[0].host_port is None
    apply_state_change(task, report(task, hostPorts=[{"hostPort": "49162"}]), NOW)
    assert task.containers[0].ports[0].host_port is None
    assert needs_host_ports(task)


# -- refusals change nothing


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.update(status="DANCING"), "status"),
        (lambda c: c.update(status=None), "status"),
        (lambda c: c["containers"][0].update(containerName="db"), "containers"),
        (lambda c: c["containers"][0].update(status="BOOTING"), "containers.status"),
    ],
    ids=["unknown-status", "no-status", "unknown-container", "unknown-container-status"],
)
def test_an_unknown_status_or_container_is_refused_and_changes_nothing(mutate: Any, field: str) -> None:
    task = stored_task()
    change = report(task, "STOPPING")
    change.update(stopCode="EssentialContainerExited", reason="exited")
    mutate(change)
    before = task.to_json()
    with pytest.raises(ValueError, match=rf"^{field}: "):
        apply_state_change(task, change, NOW)
    assert task.to_json() == before


def test_a_refused_second_container_leaves_the_first_untouched() -> None:
    task = stored_task(containers=("web", "sidecar"))
    change = report(task)
    change["containers"].append({"containerName": "sidecar", "status": "EXPLODED"})
    before = task.to_json()
    with pytest.raises(ValueError, match="containers.status"):
        apply_state_change(task, change, NOW)
    assert task.to_json() == before


# -- version


def test_the_version_moves_only_on_a_change() -> None:
    task = stored_task()
    assert apply_state_change(task, report(task), NOW) is True
    version = task.version
    assert version > 1
    assert apply_state_change(task, report(task), NOW + 1) is False
    assert task.version == version
    apply_state_change(task, report(task, healthStatus="UNHEALTHY"), NOW + 2)
    assert task.version == version + 1


# -- what the agent must do


def test_agent_desired_status() -> None:
    task = stored_task()
    assert agent_desired_status(task) == "RUNNING"
    task.request_stop("UserInitiated", "Task stopped by user", NOW)
    assert agent_desired_status(task) == "STOPPED"
    task.last_status = TaskStatus.DEACTIVATING
    assert agent_desired_status(task) == "STOPPED"  # deactivating with no targets left: stop now
    task.lb_targets = [["arn:tg", "i-1", 49162]]
    assert agent_desired_status(task) == "RUNNING"  # still draining: keep serving requests in flight
    task.desired_status = "RUNNING"
    assert agent_desired_status(task) == "RUNNING"


def draining(task: Task) -> Task:
    task.request_stop("ServiceSchedulerInitiated", "Scaling activity initiated", NOW)
    task.last_status = TaskStatus.DEACTIVATING
    task.lb_targets = [["arn:tg", "i-1", 49162]]
    return task


def test_apply_assignment_keeps_a_draining_task_running_and_takes_its_targets() -> None:
    local = new_agent_task(stored_task())
    assigned = draining(stored_task())
    assert apply_assignment(local, assigned) is False
    assert local.desired_status == "RUNNING"
    assert local.lb_targets == [["arn:tg", "i-1", 49162]]


def test_apply_assignment_stops_once_the_drain_ended_with_the_control_planes_reason() -> None:
    local = new_agent_task(stored_task())
    assigned = draining(stored_task())
    assigned.lb_targets = []
    assigned.timestamps["stoppingAt"] = NOW - 3
    assert apply_assignment(local, assigned) is True
    assert (local.desired_status, local.stop_code, local.stopped_reason) == (
        "STOPPED",
        "ServiceSchedulerInitiated",
        "Scaling activity initiated",
    )
    assert local.timestamps["stoppingAt"] == NOW - 3
    assert local.lb_targets == []


def test_apply_assignment_never_takes_the_control_planes_statuses_or_containers() -> None:
    local = new_agent_task(stored_task())
    local.last_status = TaskStatus.RUNNING
    local.containers[0].last_status = ContainerStatus.RUNNING
    assigned = stored_task()  # the control plane has not heard RUNNING yet
    apply_assignment(local, assigned)
    assert local.last_status is TaskStatus.RUNNING
    assert local.containers[0].last_status is ContainerStatus.RUNNING


def test_a_task_the_agent_stopped_itself_stays_stopped_whatever_is_assigned() -> None:
    local = new_agent_task(stored_task())
    local.request_stop("EssentialContainerExited", "Essential container in task exited", NOW)
    assert apply_assignment(local, stored_task()) is True
    assert local.stop_code == "EssentialContainerExited"


def test_new_agent_task_of_a_draining_task_runs_it_until_told() -> None:
    assigned = draining(stored_task())
    task = new_agent_task(assigned)
    assert (task.desired_status, task.last_status) == ("RUNNING", TaskStatus.RUNNING)
    assert task.lb_targets == assigned.lb_targets
    assert task is not assigned and task.containers[0] is not assigned.containers[0]
    assert assigned.desired_status == "STOPPED"  # the assignment itself is not changed


def test_new_agent_task_of_a_stopped_task_is_stopped() -> None:
    assigned = stored_task()
    assigned.request_stop("UserInitiated", "Task stopped by user", NOW)
    assert new_agent_task(assigned).desired_status == "STOPPED"


def test_task_state_change_sends_the_stop_code_only_once_the_task_is_wanted_stopped() -> None:
    task = stored_task()
    task.stop_code = "EssentialContainerExited"
    assert "stopCode" not in task_state_change(task)
    task.desired_status = "STOPPED"
    assert task_state_change(task)["stopCode"] == "EssentialContainerExited"


def test_a_report_from_task_state_change_round_trips() -> None:
    agent_copy = new_agent_task(stored_task())
    agent_copy.last_status = TaskStatus.RUNNING
    agent_copy.containers[0].last_status = ContainerStatus.RUNNING
    agent_copy.containers[0].docker_id = "abc"
    agent_copy.containers[0].ports[0].host_port = 50000
    agent_copy.timestamps["startedAt"] = NOW - 2
    stored = stored_task()
    stored.arn, stored.id = agent_copy.arn, agent_copy.id
    apply_state_change(stored, task_state_change(agent_copy), NOW)
    assert (stored.last_status, stored.containers[0].docker_id, stored.containers[0].ports[0].host_port) == (
        TaskStatus.RUNNING,
        "abc",
        50000,
    )
    assert stored.timestamps["startedAt"] == NOW - 2


# -- properties

STATUSES = ["PENDING", "RUNNING", "STOPPING", "STOPPED"]
CONTAINER_FOR = {
    "PENDING": ["PENDING"],
    "RUNNING": ["RUNNING"],
    "STOPPING": ["RUNNING", "STOPPED"],
    "STOPPED": ["STOPPED"],
}
reports = st.builds(
    lambda status, container, health, stop, exit_code, stamp: (
        status,
        container,
        health,
        stop,
        exit_code,
        stamp,
    ),
    st.sampled_from(STATUSES),
    st.integers(0, 1),
    st.sampled_from(["UNKNOWN", "HEALTHY", "UNHEALTHY"]),
    st.booleans(),
    st.one_of(st.none(), st.integers(0, 255)),
    st.floats(NOW - 100, NOW, allow_nan=False),
)


def build(task: Task, spec: tuple[Any, ...]) -> dict[str, Any]:
    status, container, health, stop, exit_code, stamp = spec
    options = CONTAINER_FOR[status]
    change = report(
        task,
        status,
        container_status=options[container % len(options)],
        healthStatus=health,
        exitCode=exit_code,
    )
    change["timestamps"] = {"pullStartedAt": stamp, "startedAt": stamp + 1}
    if stop:
        change.update(stopCode="EssentialContainerExited", reason="Essential container in task exited")
    return change


@settings(max_examples=150, deadline=None)
@given(reports)
def test_applying_a_report_twice_equals_applying_it_once(spec: tuple[Any, ...]) -> None:
    once = stored_task()
    change = build(once, spec)
    apply_state_change(once, copy.deepcopy(change), NOW)
    twice = Task.from_json(once.to_json())
    assert apply_state_change(twice, copy.deepcopy(change), NOW + 1) is False
    assert twice.to_json() == once.to_json()


@settings(max_examples=150, deadline=None)
@given(st.lists(reports, min_size=1, max_size=6))
def test_reports_in_any_order_never_move_last_status_backwards(specs: list[tuple[Any, ...]]) -> None:
    task = stored_task()
    changes = [build(task, s) for s in specs]
    seen_task, seen_containers = task.last_status, task.containers[0].last_status
    for change in changes:
        apply_state_change(task, change, NOW)
        assert task.last_status >= seen_task
        assert task.containers[0].last_status >= seen_containers
        seen_task, seen_containers = task.last_status, task.containers[0].last_status
    assert task.last_status == max(TaskStatus[c["status"]] for c in changes)
