"""The ECS service scheduler's decision: from a snapshot of one service, what to do next.

Theory of operation
-------------------
``reconcile(service, tasks, now)`` is a pure function (spec ecs.md §3; STYLE.md "a pure core"):
no I/O, no clock (``now`` is passed in), no randomness. The controller reads a snapshot, calls
it, applies the :class:`Plan` (starting tasks through placement, stopping tasks through
deregister → drain → SIGTERM) and calls it again whenever anything changes. It is
level-triggered: the plan depends only on the snapshot, never on what was planned before, so a
lost or repeated call is harmless, and applying the plan and calling again reaches a plan with
nothing to do (:meth:`Plan.is_empty`). The same snapshot always gives the same plan: tasks are
put in a canonical order first (``created_at`` then ``arn``) and every choice breaks ties the
same way.

Vocabulary (all counts are over the tasks passed in, which are the service's tasks):

* **live**: PENDING or RUNNING. **stopping**: STOPPING (asked to stop: deregistering, draining or
  stopping). A STOPPING task is never stopped again, counts against the maximum until it is
  gone, and never counts as healthy.
* **healthy**: RUNNING with ``healthy is True`` (the controller applies §3.1's definition: target
  healthy for LB services, container HEALTHY with a health check, else RUNNING for 40 s).
* **doomed**: RUNNING with ``healthy is False`` once ``started_at + healthCheckGracePeriodSeconds
  <= now`` (§3.1: unhealthy checks are ignored "after a task has first started" for the grace
  period). Doomed tasks are stopped for health and replaced.
* **minimum** = ceil(desired × minimumHealthyPercent / 100) healthy tasks; **maximum** =
  floor(desired × maximumPercent / 100) live + stopping tasks (:mod:`portside.core.deployment`).
  The maximum is never taken below ``desired`` (a maximumPercent under 100 would otherwise make
  the desired count unreachable).

One pass, in order (each step cites the spec):

1. Service not ACTIVE (DeleteService sets DRAINING with desired 0): stop every live task; once
   nothing is left, set ``Plan.service_inactive``.
2. Circuit breaker (§3.2) on the IN_PROGRESS PRIMARY deployment: when tripped the plan is only
   "FAILED" (+ rollback); the next call continues from the new state.
3. Starts: the PRIMARY deployment wants ``desired`` non-doomed live tasks; start the deficit as far
   as the maximum allows, unless the PRIMARY is FAILED ("FAILED deployments launch no new
   tasks") or the launch back-off is active (§3.3).
4. Stops, each healthy one paid from a budget of ``healthy - minimum`` so the healthy count
   never drops below the minimum:
   a. scale-in: PRIMARY tasks beyond ``desired`` (PENDING first, then not-yet-healthy or unhealthy,
      then healthy; AZ-balanced, newest first);
   b. old deployments' tasks (unless the PRIMARY is FAILED): not-healthy first (free), then
      healthy ones within the budget;
   c. doomed tasks: all of them when their replacements are started (or not needed), otherwise
      one at a time to clear capacity (§3.1 "Unhealthy replacement").
5. Reports: the "unable to stop or start tasks … deployment configuration" event when the
   configuration alone holds the deployment still; steady state and COMPLETED when the PRIMARY
   has exactly ``desired`` healthy tasks and nothing else is left.

Events and ``steady`` are level reports, not actions: they are present in every plan computed
while their condition holds, and the controller de-duplicates them the way ECS does ("duplicates
suppressed until resolved or 6 h", §3.1). :meth:`Plan.is_empty` therefore looks only at actions.
Events that need facts only the controller learns by acting ("has started 1 tasks: (task …)",
"has stopped 1 running tasks", "registered 1 targets", the rollback's "rolling back to
deployment …") are the controller's to write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from portside.core.deployment import circuit_breaker_threshold, maximum_tasks, minimum_healthy_tasks

__all__ = [
    "ACTIVE",
    "COMPLETED",
    "DRAINING",
    "FAILED",
    "INACTIVE",
    "IN_PROGRESS",
    "PRIMARY",
    "STOP_CODE_SCHEDULER",
    "DeploymentView",
    "Plan",
    "ServiceView",
    "TaskView",
    "circuit_breaker_reason",
    "completed_reason",
    "reconcile",
    "scaling_reason",
]

# Task statuses as this module sees them.
PENDING = "PENDING"
RUNNING = "RUNNING"
STOPPING = "STOPPING"
# Service status (§3.1).
ACTIVE = "ACTIVE"
DRAINING = "DRAINING"
INACTIVE = "INACTIVE"
# Deployment status and rolloutState (§3.1).
PRIMARY = "PRIMARY"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"

# §3.7: both the scheduler's scale-in/replacement stops and its health stops carry this code
# ("no dedicated code" for ELB health failures: aws/containers-roadmap#612).
STOP_CODE_SCHEDULER = "ServiceSchedulerInitiated"


@dataclass(frozen=True)
class TaskView:
    """One task of the service, as the scheduler needs to see it."""

    arn: str
    deployment_id: str  # ecs-svc/<19 digits>: the deployment that started it (ECS's startedBy)
    status: str  # PENDING (not yet RUNNING) | RUNNING | STOPPING (asked to stop)
    started_at: float | None  # when it reached RUNNING
    healthy: bool | None  # True: counts as healthy; False: known unhealthy; None: not yet known
    unhealthy_reason: str | None  # e.g. "Task failed ELB health checks in (target-group arn:…)"
    created_at: float
    availability_zone: str | None = None  # used only to balance scale-in; None = unknown


@dataclass(frozen=True)
class DeploymentView:
    id: str
    task_definition: str
    status: str  # PRIMARY | ACTIVE (an INACTIVE one may be listed; it is never updated again)
    rollout_state: str  # IN_PROGRESS | COMPLETED | FAILED
    created_at: float
    failed_tasks: int  # counted by the controller, see deployment.breaker_counts_failure
    had_running_task: bool  # circuit breaker stage 2: it has had ≥ 1 RUNNING task
    # §3.2 "Not engaged if the deployment already had a successfully running task at update
    # time": set by the controller when an UpdateService kept this deployment (no new one was
    # created, e.g. only desiredCount changed) while it had a healthy RUNNING task. A deployment
    # created by the update starts with no task, so this is False for it.
    running_task_at_update: bool = False


@dataclass(frozen=True)
class ServiceView:
    name: str
    desired_count: int
    status: str  # ACTIVE | DRAINING (DeleteService: desired 0, then INACTIVE) | INACTIVE
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    circuit_breaker_enable: bool = False
    circuit_breaker_rollback: bool = False
    health_check_grace_period_s: int = 0
    deployments: tuple[DeploymentView, ...] = ()  # PRIMARY first
    launch_backoff_until: float = 0.0  # no new task may start before this (throttle)
    last_completed_task_definition: str | None = None


@dataclass(frozen=True)
class Plan:
    """What the controller should do now. Order within each tuple is the order to act in."""

    start: tuple[tuple[str, int], ...] = ()  # (deployment id, how many tasks to start)
    stop: tuple[tuple[str, str, str], ...] = ()  # (task arn, stopCode, stoppedReason)
    # (deployment id, new rolloutState or status, rolloutStateReason or None). "FAILED" and
    # "COMPLETED" are rolloutStates; "INACTIVE" is a deployment status (the deployment is dropped).
    deployment_updates: tuple[tuple[str, str, str | None], ...] = ()
    rollback_to: str | None = None  # start a new PRIMARY deployment of this task definition
    events: tuple[str, ...] = ()  # service event messages in ECS's words (level reports)
    steady: bool = False  # "(service X) has reached a steady state." holds now
    service_inactive: bool = False  # a DRAINING service has no task left: make it INACTIVE

    def is_empty(self) -> bool:
        """True when there is nothing to apply. ``events`` and ``steady`` are reports, not actions."""
        return not (
            self.start or self.stop or self.deployment_updates or self.rollback_to or self.service_inactive
        )


# --- ECS's words --------------------------------------------------------------------------------


def scaling_reason(deployment_id: str) -> str:
    """§3.7 stoppedReason for scale-in and deployment stops (stopCode ServiceSchedulerInitiated).

    The id is the stopped task's own deployment (its startedBy): ECS scales each deployment's
    own desiredCount down during a rolling update. Which id ECS prints for an old deployment's
    task is UNVERIFIED; §3.7 only pins the form.
    """
    return f"Scaling activity initiated by (deployment {deployment_id})"


def completed_reason(deployment_id: str) -> str:
    """rolloutStateReason of a COMPLETED deployment, as DescribeServices shows it."""
    return f"ECS deployment {deployment_id} completed."


def circuit_breaker_reason() -> str:
    """rolloutStateReason of a deployment the circuit breaker failed (both stages).

    Real ECS output uses this text even when the failures were health checks (aws/containers-
    roadmap#1488: "When tasks fail the health checks … fails with the reason: ECS deployment
    circuit breaker: tasks failed to start.").
    """
    return "ECS deployment circuit breaker: tasks failed to start."


def _event_steady(service: str) -> str:
    return f"(service {service}) has reached a steady state."  # §3.7, VERIFIED


def _event_throttled(service: str) -> str:
    return f"(service {service}) is unable to consistently start tasks successfully."  # §3.3


def _event_blocked(service: str) -> str:
    # §3.1, [dg] deployment-type-ecs.md / service-event-messages.md
    return (
        f"(service {service}) was unable to stop or start tasks during a deployment because of the "
        "service deployment configuration. Update the minimumHealthyPercent or maximumPercent value "
        "and try again."
    )


def _event_breaker_failed(service: str, deployment_id: str) -> str:
    # REPORTED in user drill logs ("deployment failed: tasks failed to start"); the full
    # "(service X) (deployment id)" prefix follows ECS's other deployment events.
    return f"(service {service}) (deployment {deployment_id}) deployment failed: tasks failed to start."


# --- the decision --------------------------------------------------------------------------------


def reconcile(service: ServiceView, tasks: Iterable[TaskView], now: float) -> Plan:
    """The next plan for ``service`` given its ``tasks`` at time ``now`` (see the module docstring)."""
    ordered = tuple(sorted(tasks, key=_by_age))
    if service.status != ACTIVE:
        return _reconcile_not_active(service, ordered)
    primary = _primary(service)
    if primary is None:
        # An ACTIVE service always has a PRIMARY deployment; without one there is nothing to run
        # toward, so plan nothing rather than guess.
        return Plan()
    tripped = _circuit_breaker(service, primary)
    if tripped is not None:
        return tripped
    return _reconcile_active(service, primary, ordered, now)


def _reconcile_not_active(service: ServiceView, tasks: Sequence[TaskView]) -> Plan:
    """DeleteService: desired 0, stop everything, then INACTIVE (§3.1 service status)."""
    live = [t for t in tasks if t.status != STOPPING]
    stops = tuple(_stop(t, scaling_reason(t.deployment_id)) for t in _scale_in_order(live))
    done = not tasks and service.status == DRAINING
    return Plan(stop=stops, service_inactive=done)


def _circuit_breaker(service: ServiceView, primary: DeploymentView) -> Plan | None:
    """§3.2: FAILED once ``failedTasks`` reaches the threshold; optionally roll back."""
    if not service.circuit_breaker_enable or primary.rollout_state != IN_PROGRESS:
        return None
    # "Not engaged if the deployment already had a successfully running task at update time."
    if primary.running_task_at_update:
        return None
    # "When the failure count equals the threshold, the deployment is marked as FAILED" ([dg]);
    # >= so that a count that jumped past the threshold still trips.
    if primary.failed_tasks < circuit_breaker_threshold(service.desired_count):
        return None
    rollback = service.last_completed_task_definition if service.circuit_breaker_rollback else None
    return Plan(
        deployment_updates=((primary.id, FAILED, circuit_breaker_reason()),),
        rollback_to=rollback,
        events=(_event_breaker_failed(service.name, primary.id),),
    )


def _reconcile_active(
    service: ServiceView, primary: DeploymentView, tasks: Sequence[TaskView], now: float
) -> Plan:
    desired = max(0, service.desired_count)
    minimum = minimum_healthy_tasks(desired, service.minimum_healthy_percent)
    maximum = max(desired, maximum_tasks(desired, service.maximum_percent))
    grace = max(0, service.health_check_grace_period_s)

    live = [t for t in tasks if t.status != STOPPING]
    stopping = [t for t in tasks if t.status == STOPPING]
    healthy_count = sum(1 for t in live if _is_healthy(t))
    rolling = primary.rollout_state != FAILED  # "FAILED deployments launch no new tasks" (§3.2)

    def doomed(t: TaskView) -> bool:
        return _is_doomed(t, grace, now)

    primary_live = [t for t in live if t.deployment_id == primary.id]
    primary_good = [t for t in primary_live if not doomed(t)]
    primary_doomed = sorted((t for t in primary_live if doomed(t)), key=_longest_unhealthy)
    old_live = [t for t in live if t.deployment_id != primary.id]

    events: list[str] = []

    # 3. Starts. Everything live or stopping counts against the maximum (§3.1).
    deficit = max(0, desired - len(primary_good))
    room = max(0, maximum - len(live) - len(stopping))
    wanted = min(deficit, room) if rolling else 0
    throttled = now < service.launch_backoff_until
    starts = 0 if throttled else wanted
    if throttled and wanted > 0:
        events.append(_event_throttled(service.name))  # §3.3

    # 4. Stops. Every stop of a healthy task is paid from this budget (§3.1 minimum healthy).
    budget = max(0, healthy_count - minimum)
    stops: list[tuple[str, str, str]] = []

    def stop_within_budget(t: TaskView, reason: str) -> bool:
        nonlocal budget
        if _is_healthy(t):
            if budget == 0:
                return False
            budget -= 1
        stops.append(_stop(t, reason))
        return True

    # 4a. Scale-in: PRIMARY tasks beyond desired. Tasks in the grace period "may still be stopped
    # if more running than desired" (§3.1); PENDING and not-healthy ones go first.
    excess = len(primary_good) - desired
    for t in _scale_in_order(primary_good) if excess > 0 else ():
        if excess <= 0:
            break
        if stop_within_budget(t, scaling_reason(t.deployment_id)):
            excess -= 1

    # 4b. Rolling deployment: replace the old deployments' tasks. Not-healthy ones first (stopping
    # them never lowers the healthy count), then healthy ones while healthy stays ≥ minimum, so
    # with minimumHealthyPercent 100 new copies are healthy before old ones go (§3.1).
    if rolling:
        for t in _old_order(old_live, service):
            reason = _health_reason(t) if doomed(t) else scaling_reason(t.deployment_id)
            stop_within_budget(t, reason)

    # 4c. Unhealthy replacement (§3.1): "start replacement first if maximumPercent allows, else
    # stop unhealthy one-by-one respecting minimumHealthyPercent". A doomed task is not healthy,
    # so stopping it never lowers the healthy count.
    # Without a rollout (PRIMARY FAILED) the old deployments' doomed tasks are handled here too.
    unhealthy = primary_doomed if rolling else primary_doomed + [t for t in old_live if doomed(t)]
    unhealthy.sort(key=_longest_unhealthy)
    if rolling and starts >= deficit:
        health_stops = len(unhealthy)  # every replacement is started, or none is needed
    else:
        # Starts fill missing slots first; only those beyond them replace a doomed task.
        missing = max(0, desired - len(primary_live))
        health_stops = min(len(unhealthy), max(0, starts - missing)) if rolling else 0
        if health_stops == 0 and unhealthy and not stopping and not stops:
            health_stops = 1  # one by one, to clear capacity for a replacement
    for t in unhealthy[:health_stops]:
        stops.append(_stop(t, _health_reason(t)))

    # 5a. The configuration alone holds the deployment still (§3.1): old tasks to replace, nothing
    # pending, stopping or of unknown health to wait for, no room to start and no budget to stop.
    if (
        rolling
        and old_live
        and not starts
        and not stops
        and not stopping
        and not throttled
        and all(_is_healthy(t) for t in live)
        and len(live) >= maximum
        and healthy_count <= minimum
    ):
        events.append(_event_blocked(service.name))

    # 5b. Steady state: the PRIMARY has exactly desired healthy tasks and nothing else is left
    # (ECS's ServicesStable waiter: one deployment and runningCount == desiredCount, §6.4).
    updates: list[tuple[str, str, str | None]] = []
    steady = (
        not starts
        and not stops
        and not stopping
        and not old_live
        and len(primary_live) == desired
        and all(_is_healthy(t) for t in primary_live)
    )
    if steady:
        if primary.rollout_state == IN_PROGRESS:
            updates.append((primary.id, COMPLETED, completed_reason(primary.id)))
        updates.extend(
            (d.id, INACTIVE, None) for d in service.deployments if d.id != primary.id and d.status != INACTIVE
        )
        events.append(_event_steady(service.name))

    return Plan(
        start=((primary.id, starts),) if starts else (),
        stop=tuple(stops),
        deployment_updates=tuple(updates),
        events=tuple(events),
        steady=steady,
    )


# --- helpers -------------------------------------------------------------------------------------


def _primary(service: ServiceView) -> DeploymentView | None:
    return next((d for d in service.deployments if d.status == PRIMARY), None)


def _is_healthy(t: TaskView) -> bool:
    return t.status == RUNNING and t.healthy is True


def _is_doomed(t: TaskView, grace_s: int, now: float) -> bool:
    """Known unhealthy and past the grace period, which starts when the task reached RUNNING."""
    if t.status != RUNNING or t.healthy is not False:
        return False
    since = t.started_at if t.started_at is not None else t.created_at
    return since + grace_s <= now


def _health_reason(t: TaskView) -> str:
    # The controller composes ECS's exact text (§3.7); this fallback names no check it can't know.
    return t.unhealthy_reason or "Task failed health checks"


def _stop(t: TaskView, reason: str) -> tuple[str, str, str]:
    return (t.arn, STOP_CODE_SCHEDULER, reason)


def _by_age(t: TaskView) -> tuple[float, str]:
    return (t.created_at, t.arn)


def _newest_first(t: TaskView) -> tuple[float, str]:
    return (-t.created_at, t.arn)


def _longest_unhealthy(t: TaskView) -> tuple[float, float, str]:
    since = t.started_at if t.started_at is not None else t.created_at
    return (since, t.created_at, t.arn)


def _stop_class(t: TaskView) -> int:
    """Scale-in preference: PENDING, then RUNNING not (yet) healthy, then healthy."""
    if t.status == PENDING:
        return 0
    if not _is_healthy(t):
        return 1
    return 2


def _scale_in_order(pool: Sequence[TaskView]) -> list[TaskView]:
    """The order to stop tasks of one deployment on scale-in.

    PENDING first, then not-yet-healthy or unhealthy, then healthy (brief + §3.6 "PENDING
    stopped immediately"). Within a class ECS balances Availability Zones first: the next task
    comes from the zone that has the most of the deployment's remaining tasks, and within that
    zone the newest goes first (ties: arn). Tasks without AZ information all share one zone, so
    a deployment whose tasks carry no AZ is scaled in newest first.
    """
    remaining = Counter(t.availability_zone for t in pool)
    order: list[TaskView] = []
    for cls in (0, 1, 2):
        candidates = sorted((t for t in pool if _stop_class(t) == cls), key=_newest_first)
        while candidates:
            pick = _pick_from_fullest_zone(candidates, remaining)
            candidates.remove(pick)
            remaining[pick.availability_zone] -= 1
            order.append(pick)
    return order


def _pick_from_fullest_zone(candidates: list[TaskView], remaining: Counter[str | None]) -> TaskView:
    """The newest candidate of the zone with the most remaining tasks (zones tie on name)."""
    # candidates are newest first, so the lowest index within a zone is that zone's newest.
    _, pick = min(
        enumerate(candidates),
        key=lambda it: (-remaining[it[1].availability_zone], it[1].availability_zone or "", it[0]),
    )
    return pick


def _old_order(old: Sequence[TaskView], service: ServiceView) -> list[TaskView]:
    """Old deployments' tasks in the order to stop them during a rolling deployment.

    Not-healthy first (PENDING, then RUNNING not healthy — doomed included), then healthy; within
    a class, the oldest deployment first (tasks of a deployment the service no longer lists
    count as oldest), then newest task first.
    """
    created = {d.id: d.created_at for d in service.deployments}

    def key(t: TaskView) -> tuple[int, float, float, str]:
        return (_stop_class(t), created.get(t.deployment_id, float("-inf")), -t.created_at, t.arn)

    return sorted(old, key=key)
