"""portside.core.service_reconcile: the ECS service scheduler's pure decision (spec ecs.md §3).

Table tests pin ECS's documented examples and each rule; Hypothesis drives
``reconcile`` → :func:`apply_plan_for_tests` loops to check that rolling deployments and
scaling converge to ``desired`` healthy PRIMARY tasks and then to an empty plan, and that the
maximum / minimum healthy bounds hold on every step.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portside.core.deployment import maximum_tasks, minimum_healthy_tasks
from portside.core.service_reconcile import (
    DeploymentView,
    Plan,
    ServiceView,
    TaskView,
    circuit_breaker_reason,
    completed_reason,
    reconcile,
    scaling_reason,
)

OLD = "ecs-svc/1000000000000000000"
NEW = "ecs-svc/2000000000000000000"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/555a"
ELB_REASON = f"Task failed ELB health checks in (target-group {TG})"
CODE = "ServiceSchedulerInitiated"


def blocked_event(name: str = "web") -> str:
    return (
        f"(service {name}) was unable to stop or start tasks during a deployment because of the service "
        "deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again."
    )


def dep(
    id: str = NEW,
    *,
    status: str = "PRIMARY",
    rollout: str = "IN_PROGRESS",
    td: str = "web:2",
    created_at: float = 100.0,
    failed: int = 0,
    had_running: bool = False,
    at_update: bool = False,
) -> DeploymentView:
    return DeploymentView(id, td, status, rollout, created_at, failed, had_running, at_update)


def old_dep() -> DeploymentView:
    return dep(OLD, status="ACTIVE", rollout="COMPLETED", td="web:1", created_at=0.0)


def svc(desired: int, *deployments: DeploymentView, **kw: object) -> ServiceView:
    return ServiceView(
        name="web",
        desired_count=desired,
        status=str(kw.pop("status", "ACTIVE")),
        deployments=deployments or (dep(),),
        last_completed_task_definition="web:1",
        **kw,  # type: ignore[arg-type]
    )


def task(
    arn: str,
    deployment: str = NEW,
    *,
    status: str = "RUNNING",
    healthy: bool | None = True,
    created_at: float = 0.0,
    started_at: float | None = None,
    reason: str | None = None,
    az: str | None = None,
) -> TaskView:
    if started_at is None and status != "PENDING":
        started_at = created_at + 1
    return TaskView(arn, deployment, status, started_at, healthy, reason, created_at, az)


def olds(n: int, **kw: object) -> list[TaskView]:
    return [task(f"old-{i}", OLD, created_at=float(i), **kw) for i in range(n)]  # type: ignore[arg-type]


def news(n: int, **kw: object) -> list[TaskView]:
    return [task(f"new-{i}", NEW, created_at=50.0 + i, **kw) for i in range(n)]  # type: ignore[arg-type]


def started(plan: Plan) -> int:
    return sum(n for _, n in plan.start)


def stopped(plan: Plan) -> list[str]:
    return [arn for arn, _, _ in plan.stop]


# --- the simulator -------------------------------------------------------------------------------

HealthFn = Callable[[TaskView], "bool | None"]


def apply_plan_for_tests(
    service: ServiceView,
    tasks: tuple[TaskView, ...],
    plan: Plan,
    now: float,
    *,
    health: HealthFn = lambda t: True,
) -> tuple[ServiceView, tuple[TaskView, ...]]:
    """Apply ``plan`` to the snapshot it was computed from and let one step of the world pass.

    Tasks that were STOPPING before vanish; tasks that were PENDING reach RUNNING with the
    health ``health(task)`` gives (healthy by default); stopped tasks become STOPPING (gone on
    the next step); started tasks appear PENDING. Deployment updates, a rollback and the service
    going INACTIVE are applied as the controller would.
    """
    stop_arns = {arn for arn, _, _ in plan.stop}
    out: list[TaskView] = []
    for t in tasks:
        if t.status == "STOPPING":
            continue
        if t.arn in stop_arns:
            out.append(dataclasses.replace(t, status="STOPPING"))
        elif t.status == "PENDING":
            running = dataclasses.replace(t, status="RUNNING", started_at=now)
            ok = health(running)
            reason = ELB_REASON if ok is False else None
            out.append(dataclasses.replace(running, healthy=ok, unhealthy_reason=reason))
        else:
            out.append(t)
    for deployment_id, count in plan.start:
        for i in range(count):
            out.append(
                TaskView(
                    f"t-{now:g}-{deployment_id[-4:]}-{i}", deployment_id, "PENDING", None, None, None, now
                )
            )

    deployments: list[DeploymentView | None] = list(service.deployments)
    last_completed = service.last_completed_task_definition
    for deployment_id, state, reason in plan.deployment_updates:
        for i, d in enumerate(deployments):
            if d is None or d.id != deployment_id:
                continue
            if state == "INACTIVE":
                deployments[i] = None
            else:
                deployments[i] = dataclasses.replace(d, rollout_state=state)
                if state == "COMPLETED":
                    last_completed = d.task_definition
    live = [d for d in deployments if d is not None]
    if plan.rollback_to is not None:
        live = [dataclasses.replace(d, status="ACTIVE") for d in live]
        new_id = f"ecs-svc/{9000000000000000000 + int(now)}"
        live.insert(0, dep(new_id, td=plan.rollback_to, created_at=now))
    status = "INACTIVE" if plan.service_inactive else service.status
    new_service = dataclasses.replace(
        service, deployments=tuple(live), status=status, last_completed_task_definition=last_completed
    )
    return new_service, tuple(out)


def counted(tasks: tuple[TaskView, ...]) -> int:
    return len(tasks)  # every task the service still has: PENDING, RUNNING or STOPPING


def healthy(tasks: tuple[TaskView, ...]) -> int:
    return sum(1 for t in tasks if t.status == "RUNNING" and t.healthy is True)


def run(
    service: ServiceView,
    tasks: tuple[TaskView, ...],
    *,
    now: float = 1000.0,
    steps: int = 300,
    health: HealthFn = lambda t: True,
    check: Callable[[ServiceView, tuple[TaskView, ...], Plan], None] = lambda s, t, p: None,
) -> tuple[ServiceView, tuple[TaskView, ...], Plan, float]:
    """Reconcile and apply until a fixed point: an empty plan, and a world that no longer moves."""
    for _ in range(steps):
        plan = reconcile(service, tasks, now)
        assert reconcile(service, tasks, now) == plan  # same inputs, same plan
        check(service, tasks, plan)
        after = apply_plan_for_tests(service, tasks, plan, now, health=health)
        if plan.is_empty() and after == (service, tasks) and reconcile(service, tasks, now + 3600).is_empty():
            return service, tasks, plan, now
        service, tasks = after
        now += 1.0
    raise AssertionError(f"no convergence in {steps} steps: {service} {tasks}")


def check_bounds(service: ServiceView, tasks: tuple[TaskView, ...], plan: Plan) -> None:
    """Safety on one step: the maximum, the minimum, and never stopping a STOPPING task."""
    desired = service.desired_count
    maximum = max(desired, maximum_tasks(desired, service.maximum_percent))
    minimum = minimum_healthy_tasks(desired, service.minimum_healthy_percent)
    by_arn = {t.arn: t for t in tasks}
    assert len(set(stopped(plan))) == len(plan.stop)
    assert all(by_arn[arn].status != "STOPPING" for arn in stopped(plan))
    if plan.start:
        assert counted(tasks) + started(plan) <= maximum
    healthy_stops = sum(1 for arn in stopped(plan) if by_arn[arn].status == "RUNNING" and by_arn[arn].healthy)
    assert healthy(tasks) - healthy_stops >= min(minimum, healthy(tasks))


def assert_converged(service: ServiceView, tasks: tuple[TaskView, ...], plan: Plan) -> None:
    primary = service.deployments[0]
    assert len(service.deployments) == 1 and primary.status == "PRIMARY"
    assert len(tasks) == service.desired_count
    assert all(t.deployment_id == primary.id and t.status == "RUNNING" and t.healthy for t in tasks)
    assert plan.is_empty() and plan.steady
    assert plan.events == ("(service web) has reached a steady state.",)


# --- ECS's documented examples (deployment-type-ecs.md, spec §3.1) ---------------------------------


def test_min_50_desired_4_may_stop_two_first() -> None:
    service = svc(4, dep(), old_dep(), minimum_healthy_percent=50, maximum_percent=100)
    plan = reconcile(service, tuple(olds(4)), 1000.0)
    assert started(plan) == 0  # maximum 4 is full
    assert len(plan.stop) == 2
    assert all(code == CODE and reason == scaling_reason(OLD) for _, code, reason in plan.stop)


def test_min_50_desired_4_max_200_starts_four_and_stops_two() -> None:
    service = svc(4, dep(), old_dep(), minimum_healthy_percent=50, maximum_percent=200)
    plan = reconcile(service, tuple(olds(4)), 1000.0)
    assert plan.start == ((NEW, 4),)
    assert len(plan.stop) == 2


def test_min_75_desired_2_can_stop_none() -> None:
    service = svc(2, dep(), old_dep(), minimum_healthy_percent=75, maximum_percent=100)
    plan = reconcile(service, tuple(olds(2)), 1000.0)
    assert plan.is_empty()
    assert plan.events == (blocked_event(),)


def test_max_125_desired_3_can_start_none_and_says_so() -> None:
    service = svc(3, dep(), old_dep(), minimum_healthy_percent=100, maximum_percent=125)
    plan = reconcile(service, tuple(olds(3)), 1000.0)
    assert plan.is_empty()
    assert plan.events == (
        (
            "(service web) was unable to stop or start tasks during a deployment because of the service "
            "deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again."
        ),
    )
    assert not plan.steady


def test_min_100_new_copies_are_healthy_before_old_ones_go() -> None:
    service = svc(2, dep(), old_dep())
    plan = reconcile(service, tuple(olds(2)), 1000.0)
    assert plan.start == ((NEW, 2),) and plan.stop == ()
    # New copies RUNNING but not yet healthy: nothing stops.
    plan = reconcile(service, tuple(olds(2) + news(2, healthy=None)), 1000.0)
    assert plan.is_empty() and plan.events == ()
    # One healthy: exactly one old goes.
    mixed = olds(2) + [task("new-0", created_at=50.0), task("new-1", created_at=51.0, healthy=None)]
    plan = reconcile(service, tuple(mixed), 1000.0)
    assert len(plan.stop) == 1 and stopped(plan)[0].startswith("old-")


def test_old_pending_and_unhealthy_tasks_go_first_without_touching_the_minimum() -> None:
    service = svc(3, dep(), old_dep())
    tasks = olds(3) + [
        task("old-p", OLD, status="PENDING", healthy=None, created_at=9.0),
        task("old-u", OLD, healthy=False, created_at=8.0, reason=ELB_REASON),
    ]
    plan = reconcile(service, tuple(tasks), 1000.0)
    assert stopped(plan) == ["old-p", "old-u"]
    assert {a: r for a, _, r in plan.stop}["old-u"] == ELB_REASON
    assert started(plan) == 1  # maximum 6, 5 counted


# --- rolling deployments converge -------------------------------------------------------------------


def test_full_rolling_deployment_converges_then_completes() -> None:
    service = svc(4, dep(), old_dep())
    service, tasks, plan, _ = run(service, tuple(olds(4)), check=check_bounds)
    assert_converged(service, tasks, plan)
    assert service.deployments[0].rollout_state == "COMPLETED"
    assert service.last_completed_task_definition == "web:2"


def test_completion_plan_marks_completed_and_old_inactive() -> None:
    service = svc(2, dep(), old_dep())
    plan = reconcile(service, tuple(news(2)), 1000.0)
    assert plan.steady
    assert plan.deployment_updates == ((NEW, "COMPLETED", completed_reason(NEW)), (OLD, "INACTIVE", None))
    assert completed_reason(NEW) == f"ECS deployment {NEW} completed."
    assert plan.events == ("(service web) has reached a steady state.",)
    # After the controller applies it, the same steady report remains but nothing is left to do.
    service, tasks = apply_plan_for_tests(service, tuple(news(2)), plan, 1000.0)
    again = reconcile(service, tasks, 1001.0)
    assert again.is_empty() and again.steady and again.events == plan.events


def test_not_steady_while_an_old_task_is_still_stopping() -> None:
    service = svc(2, dep(), old_dep())
    tasks = news(2) + [task("old-0", OLD, status="STOPPING")]
    plan = reconcile(service, tuple(tasks), 1000.0)
    assert plan.is_empty() and not plan.steady and plan.events == ()


@settings(max_examples=300, deadline=None)
@given(
    desired=st.integers(0, 10),
    old_count=st.integers(0, 12),
    minimum_percent=st.sampled_from([0, 25, 50, 75, 100]),
    maximum_percent=st.sampled_from([100, 125, 150, 200, 300]),
)
def test_rolling_deployment_converges_within_bounds(
    desired: int, old_count: int, minimum_percent: int, maximum_percent: int
) -> None:
    minimum = minimum_healthy_tasks(desired, minimum_percent)
    maximum = max(desired, maximum_tasks(desired, maximum_percent))
    stuck = desired > 0 and old_count > 0 and minimum == maximum == desired
    service = svc(
        desired, dep(), old_dep(), minimum_healthy_percent=minimum_percent, maximum_percent=maximum_percent
    )
    final_service, tasks, plan, _ = run(service, tuple(olds(old_count)), check=check_bounds)
    if stuck:
        assert plan.events == (blocked_event(),)
        assert any(t.deployment_id == OLD for t in tasks)
    else:
        assert_converged(final_service, tasks, plan)


@settings(max_examples=150, deadline=None)
@given(
    desired=st.integers(1, 8),
    maximum_percent=st.sampled_from([100, 150, 200]),
    minimum_percent=st.sampled_from([0, 50, 100]),
    grace=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_converges_when_some_new_tasks_turn_out_unhealthy(
    desired: int, maximum_percent: int, minimum_percent: int, grace: int, seed: int
) -> None:
    """Unhealthy new tasks are stopped after the grace period and replaced until all are healthy."""
    assume(
        minimum_healthy_tasks(desired, minimum_percent)
        < max(desired, maximum_tasks(desired, maximum_percent))
    )
    rng = random.Random(seed)
    failures = {"left": rng.randint(0, 6)}

    def health(t: TaskView) -> bool:
        if failures["left"] > 0 and rng.random() < 0.5:
            failures["left"] -= 1
            return False
        return True

    service = svc(
        desired,
        dep(),
        old_dep(),
        minimum_healthy_percent=minimum_percent,
        maximum_percent=maximum_percent,
        health_check_grace_period_s=grace,
    )

    def bounds(s: ServiceView, t: tuple[TaskView, ...], p: Plan) -> None:
        by_arn = {x.arn: x for x in t}
        assert all(by_arn[a].status != "STOPPING" for a in stopped(p))
        if p.start:
            assert counted(t) + started(p) <= max(desired, maximum_tasks(desired, maximum_percent))

    final_service, tasks, plan, _ = run(service, tuple(olds(desired)), health=health, check=check_bounds)
    assert_converged(final_service, tasks, plan)


# --- scaling without a deployment ------------------------------------------------------------------


def completed(desired: int, **kw: object) -> ServiceView:
    return svc(desired, dep(rollout="COMPLETED"), **kw)


def test_scale_out_starts_the_difference() -> None:
    plan = reconcile(completed(3), tuple(news(1)), 1000.0)
    assert plan.start == ((NEW, 2),) and plan.stop == ()


def test_scale_in_stops_pending_then_unhealthy_then_newest() -> None:
    tasks = (
        task("a", created_at=1.0),
        task("b", created_at=5.0),
        task("c", created_at=3.0),
        task("p", status="PENDING", healthy=None, created_at=0.5),
        task("u", healthy=None, created_at=0.7),
    )
    plan = reconcile(completed(1, minimum_healthy_percent=0), tasks, 1000.0)
    assert stopped(plan) == ["p", "u", "b", "c"]
    assert all(r == scaling_reason(NEW) and c == CODE for _, c, r in plan.stop)
    assert scaling_reason(NEW) == f"Scaling activity initiated by (deployment {NEW})"


def test_scale_in_balances_availability_zones() -> None:
    tasks = (
        task("a1", created_at=1.0, az="a"),
        task("a2", created_at=2.0, az="a"),
        task("a3", created_at=3.0, az="a"),
        task("b1", created_at=9.0, az="b"),
    )
    plan = reconcile(completed(2), tasks, 1000.0)
    assert stopped(plan) == ["a3", "a2"]  # zone a had the most, newest first; b1 survives though newest


def test_tasks_in_grace_are_not_stopped_for_health_but_are_on_scale_in() -> None:
    service = completed(2, health_check_grace_period_s=60)
    tasks = (
        task("ok-1", created_at=1.0),
        task("ok-2", created_at=2.0),
        task("sick", healthy=False, started_at=990.0),
    )
    plan = reconcile(service, tasks, 1000.0)  # 10 s into a 60 s grace, one more than desired
    assert stopped(plan) == ["sick"]
    assert plan.stop[0][2] == scaling_reason(NEW)
    # At desired, the same task in grace is left alone.
    plan = reconcile(service, tasks[1:], 1000.0)
    assert plan.is_empty()
    # After the grace period it is stopped for health and replaced first.
    plan = reconcile(service, tasks[1:], 1050.0)
    assert plan.start == ((NEW, 1),)
    assert plan.stop == (("sick", CODE, "Task failed health checks"),)


@settings(max_examples=300, deadline=None)
@given(
    desired=st.integers(0, 8),
    shapes=st.lists(
        st.tuples(st.sampled_from(["PENDING", "RUNNING", "STOPPING"]), st.sampled_from([True, None, False])),
        max_size=14,
    ),
    minimum_percent=st.sampled_from([0, 50, 100]),
)
def test_scale_in_never_stops_more_than_needed(
    desired: int, shapes: list[tuple[str, bool | None]], minimum_percent: int
) -> None:
    grace = 10_000  # keep every task in grace: only scale-in may stop them
    tasks = tuple(
        task(f"t{i}", status=s, healthy=h if s == "RUNNING" else None, created_at=float(i))
        for i, (s, h) in enumerate(shapes)
    )
    service = completed(desired, minimum_healthy_percent=minimum_percent, health_check_grace_period_s=grace)
    plan = reconcile(service, tasks, 1000.0)
    live = [t for t in tasks if t.status != "STOPPING"]
    assert len(plan.stop) <= max(0, len(live) - desired)
    if all(t.status == "RUNNING" and t.healthy for t in live):
        assert len(plan.stop) == max(0, len(live) - desired)
        survivors = {t.arn for t in live} - set(stopped(plan))
        assert survivors == {t.arn for t in sorted(live, key=lambda t: t.created_at)[:desired]}


# --- unhealthy replacement (§3.1) -------------------------------------------------------------------


def test_unhealthy_task_replacement_started_first_when_maximum_allows() -> None:
    tasks = (task("a"), task("b", created_at=1.0, healthy=False, reason=ELB_REASON))
    plan = reconcile(completed(2), tasks, 1000.0)
    assert plan.start == ((NEW, 1),)
    assert plan.stop == (("b", CODE, ELB_REASON),)


def test_unhealthy_tasks_stopped_one_by_one_when_maximum_is_full() -> None:
    service = completed(3, maximum_percent=100)
    tasks = (
        task("a"),
        task("b", created_at=1.0, healthy=False, reason=ELB_REASON),
        task("c", created_at=2.0, healthy=False, reason="Task failed container health checks"),
    )
    plan = reconcile(service, tasks, 1000.0)
    assert started(plan) == 0
    assert plan.stop == (("b", CODE, ELB_REASON),)  # the longest unhealthy one first
    # While it is stopping, no second one goes.
    b_stopping = (tasks[0], dataclasses.replace(tasks[1], status="STOPPING"), tasks[2])
    assert reconcile(service, b_stopping, 1001.0).is_empty()
    # Once it is gone there is room for b's replacement; c has none yet, so it goes one by one.
    plan = reconcile(service, (tasks[0], tasks[2]), 1002.0)
    assert plan.start == ((NEW, 1),)
    assert plan.stop == (("c", CODE, "Task failed container health checks"),)


def test_unhealthy_replacement_converges() -> None:
    service = completed(3, maximum_percent=100)
    tasks = tuple(task(f"t{i}", created_at=float(i), healthy=False, reason=ELB_REASON) for i in range(3))
    service, tasks, plan, _ = run(service, tasks, check=check_bounds)
    assert_converged(service, tasks, plan)


# --- circuit breaker (§3.2) -------------------------------------------------------------------------


@pytest.mark.parametrize(("desired", "threshold"), [(1, 10), (25, 13), (400, 200)])
def test_circuit_breaker_trips_at_the_threshold(desired: int, threshold: int) -> None:
    def service(failed: int) -> ServiceView:
        return svc(
            desired,
            dep(failed=failed),
            old_dep(),
            circuit_breaker_enable=True,
            circuit_breaker_rollback=True,
        )

    tasks = tuple(olds(1))
    assert reconcile(service(threshold - 1), tasks, 1000.0).deployment_updates == ()
    plan = reconcile(service(threshold), tasks, 1000.0)
    assert plan.deployment_updates == (
        (NEW, "FAILED", "ECS deployment circuit breaker: tasks failed to start."),
    )
    assert plan.rollback_to == "web:1"
    assert plan.start == () and plan.stop == ()
    assert plan.events == (f"(service web) (deployment {NEW}) deployment failed: tasks failed to start.",)
    assert circuit_breaker_reason() == plan.deployment_updates[0][2]


def test_circuit_breaker_without_rollback_only_fails() -> None:
    service = svc(1, dep(failed=10), old_dep(), circuit_breaker_enable=True)
    plan = reconcile(service, (), 1000.0)
    assert plan.deployment_updates[0][1] == "FAILED" and plan.rollback_to is None


def test_circuit_breaker_disabled_or_not_engaged() -> None:
    assert reconcile(svc(1, dep(failed=50)), (), 1000.0).start == ((NEW, 1),)
    engaged_before = svc(1, dep(failed=50, at_update=True), circuit_breaker_enable=True)
    assert reconcile(engaged_before, (), 1000.0).start == ((NEW, 1),)
    completed_already = svc(1, dep(failed=50, rollout="COMPLETED"), circuit_breaker_enable=True)
    assert reconcile(completed_already, (), 1000.0).deployment_updates == ()


def test_failed_deployment_launches_nothing_and_keeps_old_tasks() -> None:
    service = svc(2, dep(rollout="FAILED", failed=10), old_dep(), circuit_breaker_enable=True)
    plan = reconcile(service, tuple(olds(2)), 1000.0)
    assert plan.is_empty() and plan.events == ()


def test_circuit_breaker_rollback_converges_to_the_last_completed_definition() -> None:
    service = svc(2, dep(failed=10), old_dep(), circuit_breaker_enable=True, circuit_breaker_rollback=True)
    service, tasks, plan, _ = run(service, tuple(olds(2)), check=check_bounds)
    assert_converged(service, tasks, plan)
    assert service.deployments[0].task_definition == "web:1"


# --- throttle (§3.3) ---------------------------------------------------------------------------------


def test_backoff_blocks_starts_and_reports_once_per_plan() -> None:
    service = completed(2, launch_backoff_until=1100.0)
    plan = reconcile(service, (), 1000.0)
    assert plan.start == ()
    assert plan.events == ("(service web) is unable to consistently start tasks successfully.",)
    plan = reconcile(service, (), 1100.0)
    assert plan.start == ((NEW, 2),) and plan.events == ()


def test_backoff_without_a_wanted_start_is_silent() -> None:
    service = completed(1, launch_backoff_until=1100.0)
    plan = reconcile(service, tuple(news(1)), 1000.0)
    assert plan.events == ("(service web) has reached a steady state.",)


# --- DeleteService (DRAINING) -----------------------------------------------------------------------


def test_draining_service_stops_everything_then_goes_inactive() -> None:
    service = svc(0, dep(), old_dep(), status="DRAINING")
    tasks = tuple(olds(2) + news(1, status="PENDING", healthy=None))
    plan = reconcile(service, tasks, 1000.0)
    assert sorted(stopped(plan)) == ["new-0", "old-0", "old-1"] and not plan.service_inactive
    assert stopped(plan)[0] == "new-0"  # PENDING first
    still_stopping = tuple(dataclasses.replace(t, status="STOPPING") for t in tasks)
    assert reconcile(service, still_stopping, 1001.0).is_empty()
    last = reconcile(service, (), 1002.0)
    assert last.service_inactive and not last.is_empty()
    inactive, _ = apply_plan_for_tests(service, (), last, 1002.0)
    assert inactive.status == "INACTIVE" and reconcile(inactive, (), 1003.0).is_empty()


# --- safety over arbitrary snapshots -------------------------------------------------------------------

task_shapes = st.lists(
    st.tuples(
        st.sampled_from([NEW, OLD, "ecs-svc/3000000000000000000"]),
        st.sampled_from(["PENDING", "RUNNING", "STOPPING"]),
        st.sampled_from([True, None, False]),
        st.integers(0, 20),  # created_at
        st.sampled_from([None, "a", "b"]),
    ),
    max_size=16,
)


@settings(max_examples=400, deadline=None)
@given(
    desired=st.integers(0, 8),
    shapes=task_shapes,
    minimum_percent=st.sampled_from([0, 50, 75, 100]),
    maximum_percent=st.sampled_from([100, 125, 200]),
    rollout=st.sampled_from(["IN_PROGRESS", "COMPLETED", "FAILED"]),
    backoff=st.sampled_from([0.0, 2000.0]),
    grace=st.sampled_from([0, 30]),
    data=st.data(),
)
def test_any_snapshot_gives_a_safe_deterministic_plan(
    desired: int,
    shapes: list[tuple[str, str, bool | None, int, str | None]],
    minimum_percent: int,
    maximum_percent: int,
    rollout: str,
    backoff: float,
    grace: int,
    data: st.DataObject,
) -> None:
    tasks = tuple(
        task(
            f"t{i}",
            d,
            status=s,
            healthy=h if s == "RUNNING" else None,
            created_at=float(c),
            az=az,
            started_at=float(c) + 985 if s != "PENDING" else None,
        )
        for i, (d, s, h, c, az) in enumerate(shapes)
    )
    service = svc(
        desired,
        dep(rollout=rollout),
        old_dep(),
        minimum_healthy_percent=minimum_percent,
        maximum_percent=maximum_percent,
        launch_backoff_until=backoff,
        health_check_grace_period_s=grace,
    )
    plan = reconcile(service, tasks, 1000.0)
    check_bounds(service, tasks, plan)
    assert set(stopped(plan)) <= {t.arn for t in tasks}
    if desired == 0 or rollout == "FAILED" or backoff > 1000.0:
        assert plan.start == ()
    assert all(deployment_id == NEW and n > 0 for deployment_id, n in plan.start)
    shuffled = list(tasks)
    data.draw(st.randoms(use_true_random=False)).shuffle(shuffled)
    assert reconcile(service, tuple(shuffled), 1000.0) == plan


@given(desired_zero_shapes=task_shapes, status=st.sampled_from(["ACTIVE", "DRAINING", "INACTIVE"]))
def test_desired_zero_never_starts(
    desired_zero_shapes: list[tuple[str, str, bool | None, int, str | None]], status: str
) -> None:
    tasks = tuple(
        task(f"t{i}", d, status=s, healthy=h if s == "RUNNING" else None, created_at=float(c))
        for i, (d, s, h, c, _) in enumerate(desired_zero_shapes)
    )
    plan = reconcile(svc(0, dep(), old_dep(), status=status), tasks, 1000.0)
    assert plan.start == ()


def test_service_with_no_deployment_plans_nothing() -> None:
    service = ServiceView(name="web", desired_count=2, status="ACTIVE")
    assert reconcile(service, (), 0.0) == Plan()


def test_listed_inactive_deployments_are_not_updated_again() -> None:
    service = svc(
        1, dep(rollout="COMPLETED"), dep(OLD, status="INACTIVE", rollout="COMPLETED", created_at=0.0)
    )
    plan = reconcile(service, tuple(news(1)), 1000.0)
    assert plan.is_empty() and plan.steady


def test_tasks_of_an_unlisted_deployment_are_replaced_like_old_ones() -> None:
    stray = task("stray", "ecs-svc/3000000000000000000", created_at=1.0)
    plan = reconcile(completed(1), (task("a", created_at=2.0), stray), 1000.0)
    assert plan.stop == (("stray", CODE, scaling_reason("ecs-svc/3000000000000000000")),)
