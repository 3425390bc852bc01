"""Reactive scaling: every metric period, turn measurements into datapoints and act.

Once per ``--scaling-period`` seconds the scaler records requests per target per minute of every
target group, then, for every registered scalable target, asks the pure ``core.autoscale.decide``
and applies the answer through the service API (``autoscaling.apply_decision``), so every copy
added or removed is registered and drained like any other.

CPU and memory utilisation are not measured here: every host's agent reports its tasks' use
(``PublishMetrics``, ``control/usage_reports.py``), recorded as ``AWS/ECS`` ``CPUUtilization`` and
``MemoryUtilization`` per service in the metric store, and ECSServiceAverageCPUUtilization /
ECSServiceAverageMemoryUtilization read those buckets' averages back. Utilisation is a percentage
of what the task reserved (``core/utilisation.py``): CPU against the task's ``cpu`` (else the sum
of its containers' ``cpu``, else 1024 units = one core); memory against the task's ``memory``
(else the sum of its containers' hard limits, else their reservations).
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from typing import Any

from portside.control import autoscaling, rounds, scaling_policies
from portside.control import services as svc
from portside.control.plane import ControlPlane
from portside.core import autoscale as core
from portside.core import utilisation
from portside.core.lifecycle import TaskStatus

log = logging.getLogger("portside.scaler")

HISTORY = 32  # datapoints kept per metric: more than the 15 of target tracking's scale-in window
#: Target tracking's ECS metrics and the AWS/ECS metrics agents' reports are recorded as.
ECS_METRICS = {core.ECS_CPU_UTILIZATION: utilisation.CPU_METRIC, core.ECS_MEMORY_UTILIZATION: utilisation.MEMORY_METRIC}


class Scaler(rounds.Periodic):
    def __init__(self, plane: ControlPlane, period_s: float) -> None:
        super().__init__(period_s, "scaling round", log)
        self.plane = plane
        self.history: dict[tuple[str, str], deque[tuple[float, float]]] = defaultdict(lambda: deque(maxlen=HISTORY))
        self.actions: dict[tuple[str, str], int] = defaultdict(int)  # (service ARN, direction) -> count
        self._requests_seen: dict[str, int] = {}

    def round(self) -> None:
        self.tick(self.plane.clock())

    def tick(self, now: float) -> None:
        self._record_requests(now)
        for target in autoscaling.scalable_targets(self.plane):
            self._evaluate(target, now)

    # -- measurements

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
            if metric in ECS_METRICS:
                metrics[metric] = self._service_utilisation(target, ECS_METRICS[metric], now)
            else:
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

    def _service_utilisation(self, target: autoscaling.ScalableTargetState, metric: str, now: float) -> list[tuple[float, float]]:
        """The service's AWS/ECS ``metric`` from the store: (bucket start, average) of the recent buckets."""
        bucket = utilisation.bucket_s(self.period_s)
        points = self.plane.store.metric_datapoints(
            target.region, utilisation.NAMESPACE, metric, {"ClusterName": target.cluster, "ServiceName": target.service},
            now - HISTORY * max(bucket, self.period_s), now + bucket,
        )
        return [(p.ts, p.stats.sum / p.stats.sample_count) for p in points if p.stats.sample_count > 0]

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
