"""CPU and memory utilisation as ECS computes it, from what agents measure (pure).

Theory of operation
-------------------
Agents measure each running container's CPU time over an interval and its memory in use
(``agent/usage.py``) and report them (``PublishMetrics``, docs/agent-protocol.md). The control
plane turns each task's report into percentages of what the task *reserved*, which is what
``AWS/ECS`` ``CPUUtilization`` and ``MemoryUtilization`` mean for a service:

- CPU: the CPU units the task used (1024 units = one core busy for the whole interval) against
  the task's ``cpu``, else the sum of its containers' ``cpu``, else 1024 units (one core). A
  task may use more than it reserved when nothing caps it, so this can exceed 100 %, as on ECS's
  EC2 launch type.
- memory: bytes in use against the task's ``memory``, else the sum of its containers' hard limits
  (``memory``), else their reservations (``memoryReservation``); none at all: no datapoint.

For a cluster (``ClusterName`` alone) ECS divides by what the container instances *registered*
instead, so one report (one instance) gives the instance's tasks' total use against its
registered CPU and MEMORY.

Each task's percentage is one sample of its service's metric, and each report one sample of its
cluster's; the metric store keeps their statistic set per bucket (sum, count, min, max).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from portside.core.task import Task

#: CPU units of one core (ECS's unit).
CORE_UNITS = 1024
#: What a task that reserves no CPU is measured against: one core.
DEFAULT_CPU_UNITS = CORE_UNITS
MIB = 1024 * 1024
NAMESPACE = "AWS/ECS"
CPU_METRIC = "CPUUtilization"
MEMORY_METRIC = "MemoryUtilization"
UNIT = "Percent"
#: Tasks in one PublishMetrics call at most (an agent with more sends several).
MAX_TASKS_PER_REPORT = 200
#: The longest interval one container's CPU sample may span.
MAX_SAMPLE_S = 3600.0
#: How often agents report: a third of the metric period, from half a second to 20 s (ECS's agent publishes every 20 s).
MIN_REPORT_S = 0.5
MAX_REPORT_S = 20.0


@dataclass(frozen=True)
class ContainerSample:
    """One container's report: CPU nanoseconds used in ``seconds`` (None: no interval yet), memory in use."""

    name: str
    cpu_ns: int | None
    seconds: float | None
    memory_bytes: int | None


def reserved_cpu_units(task: Task) -> int:
    return task.cpu or sum(c.cpu for c in task.containers) or DEFAULT_CPU_UNITS


def reserved_memory_mib(task: Task) -> int:
    """0 when the task reserves no memory at all."""
    return task.memory or sum(c.memory or c.memory_reservation or 0 for c in task.containers)


def cpu_units_used(samples: Iterable[ContainerSample]) -> float | None:
    """Average CPU units in use over the samples' intervals; None unless every container has one."""
    total = 0.0
    for sample in samples:
        if sample.cpu_ns is None or not sample.seconds:
            return None
        total += sample.cpu_ns / (sample.seconds * 1e9) * CORE_UNITS
    return total


def memory_used(samples: Iterable[ContainerSample]) -> int | None:
    """Bytes in use by all the containers; None unless every container has a reading."""
    total = 0
    for sample in samples:
        if sample.memory_bytes is None:
            return None
        total += sample.memory_bytes
    return total


def task_cpu_percent(task: Task, samples: list[ContainerSample]) -> float | None:
    used = cpu_units_used(samples)
    return None if used is None or not samples else used / reserved_cpu_units(task) * 100


def task_memory_percent(task: Task, samples: list[ContainerSample]) -> float | None:
    used = memory_used(samples)
    reserved = reserved_memory_mib(task)
    return None if used is None or not samples or not reserved else used / (reserved * MIB) * 100


def report_interval_s(period_s: float) -> float:
    """How often agents report, for a metric period of ``period_s``: about three samples per bucket."""
    return min(MAX_REPORT_S, max(MIN_REPORT_S, period_s / 3))


def bucket_s(period_s: float) -> int:
    """The metric store's bucket for a metric period: 60 s (CloudWatch's basic resolution), or the
    period when ``--scaling-period`` is shorter."""
    return min(60, max(1, round(period_s)))
