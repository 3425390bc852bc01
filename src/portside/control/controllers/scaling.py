"""Reactive scaling: every metric period, turn live measurements into datapoints and act.

Once per ``--scaling-period`` seconds the scaler records one datapoint per
service metric — average CPU and memory utilisation of its RUNNING tasks, and
requests per target per minute of every target group — then, for every
registered scalable target, asks the pure ``core.autoscale.decide`` and applies
the answer through the service API (``autoscaling.apply_decision``), so every copy
added or removed is registered and drained like any other.

Utilisation is a percentage of what the task reserved: CPU against the task's
``cpu`` (else the sum of its containers' ``cpu``, else 1024 units = one core);
memory against the task's ``memory`` (else the sum of its containers' hard
limits, else their reservations).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from typing import Any

from portside.agent import usage
from portside.control import autoscaling, scaling_policies
from portside.control import services as svc
from portside.control import rounds
from portside.control.plane import ControlPlane
from portside.core import autoscale as core
from portside.core.lifecycle import TaskStatus
from portside.core.task import Task

log = logging.getLogger("portside.scaler")

HISTORY = 32  # datapoints kept per metric: more than the 15 of target tracking's scale-in window
DEFAULT_CPU_UNITS = 1024
MIB = 1024 * 1024


class Scaler:
    def __init__(self, plane: ControlPlane, period_s: float) -> None:
        self.plane = plane
        self.period_s = period_s
        self.history: dict[tuple[str, str], deque[tuple[float, float]]] = defaultdict(lambda: deque(maxlen=HISTORY))
        self.actions: dict[tuple[str, str], int] = defaultdict(int)  # (service ARN, direction) -> count
        self._cpu_seen: dict[str, tuple[float, int]] = {}
        self._requests_seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        await rounds.every(self.period_s, lambda: self.tick(self.plane.clock()), "scaling round", log)

    def tick(self, now: float) -> None:
        self._record_service_usage(now)
        self._record_requests(now)
        for target in autoscaling.scalable_targets(self.plane):
            self._evaluate(target, now)

    # -- measurements

    def _record_service_usage(self, now: float) -> None:
        by_service: dict[str, list[Task]] = defaultdict(list)
        for task in self.plane.store.live_tasks():
            if task.group and task.group.startswith("service:") and task.last_status is TaskStatus.RUNNING:
                arn = svc.service_arn(self.plane, task.region, task.cluster, task.group[len("service:") :])
                by_service[arn].append(task)
        for arn, tasks in by_service.items():
            cpu = [c for c in (self._cpu_percent(t, now) for t in tasks) if c is not None]
            memory = [m for m in (self._memory_percent(t) for t in tasks) if m is not None]
            if cpu:
                self.history[(arn, core.ECS_CPU_UTILIZATION)].append((now, sum(cpu) / len(cpu)))
            if memory:
                self.history[(arn, core.ECS_MEMORY_UTILIZATION)].append((now, sum(memory) / len(memory)))

    def _cpu_percent(self, task: Task, now: float) -> float | None:
        total = 0
        for container in task.containers:
            sample = usage.cpu_ns(container.docker_id) if container.docker_id else None
            if sample is None:
                return None
            total += sample
        previous = self._cpu_seen.get(task.arn)
        self._cpu_seen[task.arn] = (now, total)
        if previous is None or now <= previous[0]:
            return None
        units = task.cpu or sum(c.cpu for c in task.containers) or DEFAULT_CPU_UNITS
        cores = units / 1024
        return (total - previous[1]) / ((now - previous[0]) * 1e9 * cores) * 100

    def _memory_percent(self, task: Task) -> float | None:
        reserved = task.memory or sum(c.memory or c.memory_reservation or 0 for c in task.containers)
        if not reserved:
            return None
        used = 0
        for container in task.containers:
            sample = usage.memory_bytes(container.docker_id) if container.docker_id else None
            if sample is None:
                return None
            used += sample
        return used / (reserved * MIB) * 100

    def _record_requests(self, now: float) -> None:
        lb = self.plane.lb
        groups = getattr(lb, "groups", {}) if lb is not None else {}
        for arn, group in groups.items():
            seen = self._requests_seen.get(arn)
            self._requests_seen[arn] = group.requests
            if seen is None:
                continue
            healthy = sum(1 for t in group.eligible if t.state == "healthy")
            value = core.per_target_per_minute(group.requests - seen, healthy, self.period_s)
            self.history[(arn, core.ALB_REQUEST_COUNT_PER_TARGET)].append((now, value))

    # -- decisions

    def _evaluate(self, target: autoscaling.ScalableTargetState, now: float) -> None:
        plane = self.plane
        arn = svc.service_arn(plane, target.region, target.cluster, target.service)
        body = plane.store.get_service(arn)
        if body is None or body["status"] != "ACTIVE":
            return
        policies = scaling_policies.core_policies(plane, target.region, target.resource_id, period_s=self.period_s)
        if not policies:
            return
        metrics: dict[str, list[tuple[float, float]]] = {}
        for policy in policies:
            metric = policy.metric if isinstance(policy, core.TargetTrackingPolicy) else policy.alarm.metric if policy.alarm else None
            if metric is None or metric in metrics:
                continue
            metrics[metric] = list(self.history.get(self._history_key(arn, metric), ()))
        running = sum(
            1 for t in plane.store.live_tasks()
            if t.group == f"service:{target.service}" and t.cluster == target.cluster and t.region == target.region
            and t.last_status is TaskStatus.RUNNING and t.desired_status == "RUNNING"
        )
        decision = core.decide(
            policies, running, target.min_capacity, target.max_capacity, metrics,
            target.last_scale_out_at, target.last_scale_in_at, now, autoscaling.deployment_in_progress(body),
            desired_capacity=body["desiredCount"], scale_out_base=target.scale_out_base, suspended=target.suspension,
        )
        if decision is None:
            return
        autoscaling.apply_decision(plane, target.region, target.resource_id, decision, now)
        if decision.scales:
            self.actions[(arn, decision.direction.value)] += 1

    def _history_key(self, service_arn: str, metric: str) -> tuple[str, str]:
        metric_type, _, label = metric.partition("/")
        if metric_type == core.ALB_REQUEST_COUNT_PER_TARGET and label:
            # ResourceLabel app/<lb>/<id>/targetgroup/<name>/<id> names the target group by its ARN suffix
            suffix = label.split("/", 3)[-1]
            for arn in self._requests_seen:
                if arn.endswith(suffix):
                    return (arn, core.ALB_REQUEST_COUNT_PER_TARGET)
        return (service_arn, metric_type)

    def snapshot(self) -> dict[str, Any]:
        return {"actions": dict(self.actions)}
