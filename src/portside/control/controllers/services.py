"""The service controller: keeps each service's tasks as its desired state says.

Theory of operation
-------------------
Level-triggered, in the style of Kubernetes controllers: anything that may
matter (an API write, a task changing state, a target finishing its drain)
marks services dirty and wakes one worker; the worker re-reads everything and
calls the pure ``core.service_reconcile.reconcile``, then applies the plan. A
one-second resync marks every active service dirty as a safety net, so a lost
wake-up or a crash between two steps only delays convergence.

The controller owns two steps of a service task's life that ECS's scheduler
owns too:

- **registration**: the moment a task is RUNNING with its host port known, its
  (container instance, host port) — or (address, container port) for awsvpc —
  is registered in every target group of the service;
- **draining before stopping**: every stop of a task with targets (scale-in,
  deployment, StopTask, unhealthy replacement, DeleteService) goes
  deregister → wait until the load balancer reports the targets drained (the
  deregistration delay, or sooner when nothing is in flight) → the agent's
  SIGTERM, stopTimeout, SIGKILL → port released into quarantine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from portside.control import services as svc
from portside.control import task_definitions
from portside.control.elbv2 import targets as elb_targets
from portside.control.plane import ControlPlane
from portside.control.store.database import (
    Deposed,
    StaleWrite,
    StoreUnavailable,
    current_fence,
    fence_restored,
)
from portside.control.tags import new_task_tags
from portside.control.task_drain import drain_and_stop
from portside.control.tasks import admit_tasks
from portside.core.deployment import next_launch_backoff_s
from portside.core.lifecycle import TaskStatus
from portside.core.service_deployments import ROLLBACK_OF, ROLLED_BACK_BY, retire
from portside.core.service_reconcile import DeploymentView, ServiceView, TaskView, reconcile
from portside.core.task import Task
from portside.errors import InvalidParameterException, PortsideError

log = logging.getLogger("portside.services")

RESYNC_S = 1.0
# The deployment id reconcile sees for a task on a DRAINING container instance: no deployment's.
DRAINING_DEPLOYMENT = "draining-instance:"
TARGET_SWEEP_EVERY = 10  # resyncs between sweeps of targets no live task backs
# "Healthy" for a service task without load balancer or container health check: RUNNING this long.
UNCHECKED_HEALTHY_AFTER_S = 40.0


class ServiceController:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._dirty: set[str] = set()
        self._all_dirty = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resyncs = 0
        self._fence = current_fence()  # the leader's lease (control/leadership.py), for callbacks too
        plane.watchers.append(self._on_topic)
        plane.task_watchers.append(self._on_task_change)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop, and let go of the plane's hooks (a replica that loses the lead keeps running)."""
        if self._on_topic in self.plane.watchers:
            self.plane.watchers.remove(self._on_topic)
        if self._on_task_change in self.plane.task_watchers:
            self.plane.task_watchers.remove(self._on_task_change)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- wake-ups

    def _on_topic(self, topic: str) -> None:
        self._all_dirty = True
        self._wake.set()

    def _on_task_change(self, task: Task) -> None:
        """Called from wherever the news came (an agent's API call, the change feed): under this
        controller's fence, and never failing the caller, whose report is stored already."""
        with fence_restored(self._fence):
            try:
                try:
                    self._task_changed(task)
                except StaleWrite:  # the service was written meanwhile: once more, from what is stored now
                    self._task_changed(task)
            except PortsideError as exc:  # the next round reconciles from the store
                log.warning("task %s: %s", task.id, exc.message)
                self._all_dirty = True
                self._wake.set()

    def _task_changed(self, task: Task) -> None:
        if not task.group or not task.group.startswith("service:"):
            return
        arn = svc.service_arn(self.plane, task.region, task.cluster, task.group[len("service:") :])
        body = self.plane.store.get_service(arn)
        if body is None:
            return
        if task.last_status is TaskStatus.RUNNING and task.desired_status == "RUNNING" and not task.lb_targets:
            self._register(body, task)
        if task.is_stopped:
            self._on_stopped(body, task)
        self._dirty.add(arn)
        self._wake.set()

    # -- the worker

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_S)
            except asyncio.TimeoutError:
                self._all_dirty = True
                self._resyncs += 1
            self._wake.clear()
            try:
                self._round()
            except (StoreUnavailable, Deposed) as exc:  # the database is away, or this replica no longer leads
                self._all_dirty = True
                log.warning("services: round skipped: %s", exc.message)
            except Exception:
                self._all_dirty = True
                log.exception("services: round failed; will retry")

    def _round(self) -> None:
        if self._all_dirty:
            self._all_dirty = False
            self._dirty.update(
                b["serviceArn"] for b in self.plane.store.list_services() if b["status"] != "INACTIVE"
            )
        dirty, self._dirty = self._dirty, set()
        self._finish_drains()
        for arn in sorted(dirty):
            try:
                self.sync(arn)
            except StaleWrite:  # written meanwhile (an API call on another replica): again, from what is stored
                self._dirty.add(arn)
                self._wake.set()
            except (StoreUnavailable, Deposed):
                self._dirty.update(dirty)
                raise
            except PortsideError as exc:  # e.g. a task definition gone: reported on the service, retried
                log.warning("service %s: %s", arn, exc.message)
            except Exception:
                log.exception("syncing service %s failed; will retry", arn)
        if self._resyncs >= TARGET_SWEEP_EVERY:
            self._resyncs = 0
            self._sweep_stale_targets()

    def sync(self, arn: str) -> None:
        plane = self.plane
        body = plane.store.get_service(arn)
        if body is None or body["status"] == "INACTIVE":
            return
        now = plane.clock()
        tasks = self._service_tasks(body)
        for task in tasks:  # reported RUNNING while no controller listened (another replica led, or none did)
            if task.last_status is TaskStatus.RUNNING and task.desired_status == "RUNNING" and not task.lb_targets:
                self._register(body, task)
        draining = {
            i["containerInstanceArn"] for i in plane.store.container_instances_in_region(body["_region"])
            if i["status"] == "DRAINING"
        }
        views = tuple(self._view(body, t, now, t.container_instance_arn in draining) for t in tasks)
        plan = reconcile(self._service_view(body), views, now)
        before = json.dumps(body, sort_keys=True)
        self._report_unhealthy_targets(body, tasks)
        if plan.is_empty() and not plan.events:
            if json.dumps(body, sort_keys=True) != before:
                plane.store.put_service(body["_region"], body)
            return
        region = body["_region"]
        for deployment_id, count in plan.start:
            self._start_tasks(body, deployment_id, count)
        live = {t.arn for t in tasks}
        stopping = [arn for arn, _, _ in plan.stop if arn in live]
        if stopping:  # ECS reports the stop first, then the deregistration and the drain it starts
            ids = " ".join(f"(task {a.rsplit('/', 1)[-1]})" for a in stopping)
            svc.add_event(plane, body, f"(service {body['serviceName']}) has stopped {len(stopping)} running tasks: {ids}.")
        for task_arn, stop_code, reason in plan.stop:
            self.stop_task(task_arn, stop_code, reason.replace(DRAINING_DEPLOYMENT, ""), body)
        deployments = {d["id"]: d for d in body["deployments"]}
        for deployment_id, state, reason in plan.deployment_updates:
            self._update_deployment(body, deployments.get(deployment_id), state, reason)
        if plan.rollback_to:
            rollback = svc.new_deployment(plane, plan.rollback_to, body["desiredCount"], body["launchType"])
            for deployment in body["deployments"]:
                if deployment["status"] == "PRIMARY":
                    deployment["status"] = "ACTIVE"
                    deployment[ROLLED_BACK_BY], rollback[ROLLBACK_OF] = rollback["id"], deployment["id"]
            body["deployments"].insert(0, rollback)
            body["taskDefinition"] = plan.rollback_to
            body["_launchFailures"] = 0  # the launch back-off resets on a new task definition (§3.3)
            body["_backoffUntil"] = 0.0
        for message in plan.events:
            svc.add_event(plane, body, message)
        if getattr(plan, "service_inactive", False) and body["status"] == "DRAINING":
            body["status"] = "INACTIVE"
            for deployment in body["deployments"]:
                retire(body, deployment, plane.clock())
            body["deployments"] = []
        if json.dumps(body, sort_keys=True) != before:
            with plane.store.transaction():
                plane.store.put_service(region, body)

    # -- reading state into the pure views

    def _service_tasks(self, body: dict[str, Any]) -> list[Task]:
        group = f"service:{body['serviceName']}"
        cluster = body["clusterArn"].rsplit("/", 1)[-1]
        return [t for t in self.plane.live_tasks(body["_region"], cluster) if t.group == group]

    def _service_view(self, body: dict[str, Any]) -> ServiceView:
        config = body["deploymentConfiguration"]
        breaker = config.get("deploymentCircuitBreaker") or {}
        return ServiceView(
            name=body["serviceName"],
            desired_count=body["desiredCount"],
            status=body["status"],
            minimum_healthy_percent=config["minimumHealthyPercent"],
            maximum_percent=config["maximumPercent"],
            circuit_breaker_enable=bool(breaker.get("enable")),
            circuit_breaker_rollback=bool(breaker.get("rollback")),
            health_check_grace_period_s=body.get("healthCheckGracePeriodSeconds") or 0,
            deployments=tuple(
                DeploymentView(
                    id=d["id"], task_definition=d["taskDefinition"], status=d["status"],
                    rollout_state=d["rolloutState"], created_at=d["createdAt"], failed_tasks=d["failedTasks"],
                    had_running_task=bool(d.get("_hadRunningTask")),
                )
                for d in body["deployments"]
                if d["status"] in ("PRIMARY", "ACTIVE")
            ),
            launch_backoff_until=body.get("_backoffUntil") or 0.0,
            last_completed_task_definition=body.get("_lastCompletedTaskDefinition"),
        )

    def _view(self, body: dict[str, Any], task: Task, now: float, on_draining_instance: bool = False) -> TaskView:
        """How reconcile sees a task. One on a DRAINING instance belongs to no current deployment, so
        it is replaced the way a rolling deployment replaces old tasks (control/instance_state.py)."""
        if task.desired_status == "STOPPED" or task.last_status >= TaskStatus.DEACTIVATING:
            status = "STOPPING"
        elif task.last_status is TaskStatus.RUNNING:
            status = "RUNNING"
        else:
            status = "PENDING"
        healthy, reason = self._health(body, task, now) if status == "RUNNING" else (None, None)
        return TaskView(
            arn=task.arn,
            deployment_id=(DRAINING_DEPLOYMENT if on_draining_instance else "") + (task.started_by or ""),
            status=status,
            started_at=task.timestamps.get("startedAt"),
            healthy=healthy,
            unhealthy_reason=reason,
            created_at=task.created_at,
        )

    def _health(self, body: dict[str, Any], task: Task, now: float) -> tuple[bool | None, str | None]:
        verdicts: list[bool | None] = []
        reason = None
        if body["loadBalancers"]:
            if not task.lb_targets or self.plane.lb is None:
                verdicts.append(None)
            for tg_arn, target_id, port in task.lb_targets:
                view = self.plane.lb.target_health(tg_arn, target_id, port) if self.plane.lb else None
                state = view.state if view else "initial"
                if state == "unhealthy":
                    verdicts.append(False)
                    reason = reason or f"Task failed ELB health checks in (target-group {tg_arn})"
                else:
                    # Beyond ECS: a copy in its target group's slow-start ramp is not healthy yet, so a
                    # replacement carries its share before the copy it replaces is stopped.
                    verdicts.append(True if state == "healthy" and view is not None and not view.warming else None)
        if any(c.has_health_check and c.essential for c in task.containers):
            health = task.health_status
            verdicts.append({"HEALTHY": True, "UNHEALTHY": False}.get(health))
            if health == "UNHEALTHY":
                reason = reason or "Task failed container health checks"
        if not verdicts:
            started = task.timestamps.get("startedAt", now)
            return (True if now - started >= UNCHECKED_HEALTHY_AFTER_S else None), None
        if False in verdicts:
            return False, reason
        if None in verdicts:
            return None, None
        return True, None

    def _report_unhealthy_targets(self, body: dict[str, Any], tasks: list[Task]) -> None:
        """ECS's event for each unhealthy target (duplicates are suppressed by add_event)."""
        if self.plane.lb is None:
            return
        for task in tasks:
            for tg_arn, target_id, port in task.lb_targets:
                view = self.plane.lb.target_health(tg_arn, target_id, port)
                if view.state == "unhealthy":
                    where = f"(instance {target_id}) (port {port})" if target_id.startswith("i-") else f"(port {port})"
                    svc.add_event(
                        self.plane, body,
                        f"(service {body['serviceName']}) {where} is unhealthy in (target-group {tg_arn}) due to "
                        f"(reason {view.description or view.reason})",
                    )

    # -- acting

    def _start_tasks(self, body: dict[str, Any], deployment_id: str, count: int) -> None:
        plane = self.plane
        region = body["_region"]
        deployment = next((d for d in body["deployments"] if d["id"] == deployment_id), None)
        if deployment is None or count <= 0:
            return
        cluster = plane.require_cluster(region, body["clusterArn"])
        td = task_definitions.resolve(plane, region, deployment["taskDefinition"], "TaskDefinition not found.")
        params = {
            "startedBy": deployment_id, "group": f"service:{body['serviceName']}", "launchType": body["launchType"],
            "placementStrategy": body.get("placementStrategy") or None,
            "placementConstraints": body.get("placementConstraints") or [],
            "tags": new_task_tags(plane, region, cluster, td, {}, service=body),
            "enableExecuteCommand": body.get("enableExecuteCommand", False),
        }
        try:
            task_definitions.check_runnable(plane, task_definitions.public(td))
        except InvalidParameterException as exc:
            # Accepted when the service was created, refused now (the server restarted without an
            # --allow-* flag): said on the service, not only in the server's log.
            svc.add_event(plane, body, f"(service {body['serviceName']}) was unable to start tasks: {exc.message}")
            return
        with plane.store.transaction():
            created, _failures, explanations = admit_tasks(plane, region, cluster, td, count, {}, params)
        name = body["serviceName"]
        if created:
            ids = " ".join(f"(task {t.id})" for t in created)
            svc.add_event(plane, body, f"(service {name}) has started {len(created)} tasks: {ids}.")
        if explanations:
            svc.add_event(plane, body, explanations[0].service_event(name))

    def stop_task(self, arn: str, stop_code: str, reason: str, body: dict[str, Any] | None = None) -> Task | None:
        """Stop a task, draining its targets first (``control/task_drain.py``); finish what drained."""
        task = drain_and_stop(self.plane, arn, stop_code, reason, body)
        self._finish_drains()
        return task

    def _finish_drains(self) -> None:
        """Let the agent stop tasks whose targets have all finished draining (core.state_change)."""
        for task in self.plane.store.deactivating_tasks():
            if not task.lb_targets:
                continue
            if any(self._target_present(tg, tid, port) for tg, tid, port in task.lb_targets):
                continue
            task.lb_targets = []
            self.plane.store.put_task(task)

    def _target_present(self, tg_arn: str, target_id: str, port: int) -> bool:
        return self.plane.store.has_target(tg_arn, target_id, port)

    def _register(self, body: dict[str, Any], task: Task) -> None:
        """Register a newly RUNNING task's (instance, host port) in each of the service's target groups."""
        targets = []
        for lb in body["loadBalancers"]:
            target = self._target_for(task, lb["containerName"], lb["containerPort"])
            if target is not None:
                targets.append([lb["targetGroupArn"], target[0], target[1]])
        if not targets:
            return
        task.lb_targets = targets
        self.plane.store.put_task(task)
        for tg_arn, target_id, port in targets:
            try:
                elb_targets.register_targets(self.plane, task.region, {"TargetGroupArn": tg_arn, "Targets": [{"Id": target_id, "Port": port}]})
            except PortsideError as exc:
                log.warning("registering task %s in %s: %s", task.id, tg_arn, exc.message)
                continue
            svc.add_event(self.plane, body, f"(service {body['serviceName']}) registered 1 targets in (target-group {tg_arn})")
        self.plane.store.put_service(task.region, body)

    def _target_for(self, task: Task, container_name: str, container_port: int) -> tuple[str, int] | None:
        try:
            container = task.container(container_name)
        except KeyError:
            return None
        if task.network_mode == "awsvpc":
            return (task.private_ip, container_port) if task.private_ip else None
        instance = self.plane.store.get_container_instance(task.container_instance_arn)
        if instance is None:
            return None
        for binding in container.network_bindings:
            if binding.get("containerPort") == container_port and binding.get("hostPort"):
                return instance["ec2InstanceId"], int(binding["hostPort"])
        return None

    def _on_stopped(self, body: dict[str, Any], task: Task) -> None:
        """A service task reached STOPPED: drop leftover targets, count failures for back-off and the breaker."""
        if task.lb_targets:
            for tg_arn, target_id, port in task.lb_targets:
                try:
                    elb_targets.deregister_targets(self.plane, task.region, {"TargetGroupArn": tg_arn, "Targets": [{"Id": target_id, "Port": port}]})
                except PortsideError:
                    pass
            task.lb_targets = []
            self.plane.store.put_task(task, assigned=False)
        never_ran = "startedAt" not in task.timestamps
        # A launch failure never reached RUNNING and was not stopped on purpose (a PENDING task
        # stopped by scale-in, a deployment or StopTask failed nothing).
        launch_failed = never_ran and task.stop_code in ("TaskFailedToStart", "EssentialContainerExited")
        failed_health = (task.stopped_reason or "").startswith("Task failed")
        if launch_failed:
            body["_launchFailures"] = body.get("_launchFailures", 0) + 1
            body["_backoffUntil"] = self.plane.clock() + next_launch_backoff_s(body["_launchFailures"])
        elif not never_ran:
            body["_launchFailures"] = 0
            body["_backoffUntil"] = 0.0
        if launch_failed or failed_health or task.stop_code == "EssentialContainerExited":
            for deployment in body["deployments"]:
                if deployment["id"] == task.started_by:
                    deployment["failedTasks"] += 1
        self.plane.store.put_service(task.region, body)

    def _update_deployment(self, body: dict[str, Any], deployment: dict[str, Any] | None, state: str, reason: str | None) -> None:
        if deployment is None:
            return
        deployment["updatedAt"] = self.plane.clock()
        if state in ("COMPLETED", "FAILED", "IN_PROGRESS"):
            deployment["rolloutState"] = state
            if reason:
                deployment["rolloutStateReason"] = reason
            if state == "COMPLETED":
                body["_lastCompletedTaskDefinition"] = deployment["taskDefinition"]
        elif state == "INACTIVE":
            retire(body, deployment, self.plane.clock())
            body["deployments"] = [d for d in body["deployments"] if d is not deployment]
        else:
            deployment["status"] = state

    def _sweep_stale_targets(self) -> None:
        """Deregister targets in service target groups that point at an instance but no live task backs (ecs-agent #500)."""
        backed = {(tg, tid, port) for t in self.plane.store.live_tasks() for tg, tid, port in t.lb_targets}
        for body in self.plane.store.list_services():
            if body["status"] == "INACTIVE":
                continue
            instances = {i.get("ec2InstanceId") for i in self.plane.store.container_instances_in_region(body["_region"])}
            for lb in body["loadBalancers"]:
                rows = self.plane.store.serving_targets_of(lb["targetGroupArn"])
                stale = [{"Id": tid, "Port": port} for tid, port in rows if tid in instances and (lb["targetGroupArn"], tid, port) not in backed]
                if stale:
                    elb_targets.deregister_targets(self.plane, body["_region"], {"TargetGroupArn": lb["targetGroupArn"], "Targets": stale})

