"""PublishMetrics: agents' CPU and memory reports, recorded as AWS/ECS metrics (docs/agent-protocol.md).

An agent reports, for each RUNNING task of its instance, per container the CPU nanoseconds used
over an interval and the memory in use (``agent/usage_reports.py``). The whole report is checked
before anything is recorded; a report naming a task of another instance, an unknown container or
a value out of range is refused and records nothing. A task the control plane has already
stopped is skipped and named in the answer (``ignored``).

Each task's utilisation (``core/utilisation.py``) is one sample of its service's
``CPUUtilization`` and ``MemoryUtilization`` (dimensions ``ClusterName``, ``ServiceName``), and the
report as a whole one sample of its cluster's (``ClusterName``: use against what the instance
registered) and of its host's (``Portside/ECS``, ``ClusterName`` and ``ContainerInstanceId``), merged into the metric store's bucket of the control plane's time of receipt (an
agent's clock is not trusted). The scaler's ECSServiceAverageCPUUtilization and
ECSServiceAverageMemoryUtilization target tracking read these buckets back.
"""

from __future__ import annotations

from typing import Any

from portside.control.agent_protocol import registered_instance
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core import utilisation as u
from portside.core.metric_data import StatisticSet
from portside.core.task import Task
from portside.errors import InvalidParameterException

SERVICE_GROUP_PREFIX = "service:"
#: Per-host utilisation (dimensions ``ClusterName``, ``ContainerInstanceId``): not an AWS/ECS metric.
HOST_NAMESPACE = "Portside/ECS"
#: The largest counter an agent may report (a signed 64-bit integer, as the kernel keeps them).
MAX_COUNTER = 2**63 - 1


def publish_metrics(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    instance = registered_instance(plane, region, params)
    instance_arn = instance["containerInstanceArn"]
    listed = params.get("tasks")
    if not isinstance(listed, list) or len(listed) > u.MAX_TASKS_PER_REPORT:
        raise InvalidParameterException(f"tasks must be a list of at most {u.MAX_TASKS_PER_REPORT} task reports.")
    reports: list[tuple[Task, list[u.ContainerSample]]] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(listed):
        task, samples = _task_report(plane, region, instance_arn, f"tasks[{i}]", entry)
        if task.arn in seen:
            raise InvalidParameterException(f"tasks[{i}].task: {task.arn} is reported twice.")
        seen.add(task.arn)
        if task.is_stopped:
            ignored.append(task.arn)
        else:
            reports.append((task, samples))
    plane.saw_agent(instance_arn)
    _record(plane, region, arns.cluster_name(params.get("cluster") or "default"), instance, reports)
    return {"acknowledgment": "ACCEPTED", "ignored": ignored,
            "reportSeconds": u.report_interval_s(plane.config.scaling_period_s)}


def _record(
    plane: ControlPlane, region: str, cluster_name: str, instance: dict[str, Any],
    reports: list[tuple[Task, list[u.ContainerSample]]],
) -> None:
    at = plane.clock()
    resolution = u.bucket_s(plane.config.scaling_period_s)
    store = plane.store

    def record(dimensions: dict[str, str], metric: str, value: float | None, namespace: str = u.NAMESPACE) -> None:
        if value is not None:
            store.record_metric(region, namespace, metric, dimensions, at, StatisticSet.of(value), u.UNIT, resolution)

    cpu_units = 0.0
    memory = 0
    with store.transaction():
        for task, samples in reports:
            if task.group and task.group.startswith(SERVICE_GROUP_PREFIX):
                dimensions = {"ClusterName": task.cluster, "ServiceName": task.group[len(SERVICE_GROUP_PREFIX) :]}
                record(dimensions, u.CPU_METRIC, u.task_cpu_percent(task, samples))
                record(dimensions, u.MEMORY_METRIC, u.task_memory_percent(task, samples))
            cpu_units += u.cpu_units_used(s for s in samples if s.cpu_ns is not None) or 0.0
            memory += u.memory_used(s for s in samples if s.memory_bytes is not None) or 0
        registered = {r["name"]: r.get("integerValue") for r in instance.get("registeredResources", [])}
        cluster = {"ClusterName": cluster_name}
        # The same per host, in portside's own namespace (the dashboard's one line per host).
        host = {"ClusterName": cluster_name, "ContainerInstanceId": instance["containerInstanceArn"].rsplit("/", 1)[-1]}
        if registered.get("CPU"):
            record(cluster, u.CPU_METRIC, cpu_units / registered["CPU"] * 100)
            record(host, u.CPU_METRIC, cpu_units / registered["CPU"] * 100, HOST_NAMESPACE)
        if registered.get("MEMORY"):
            record(cluster, u.MEMORY_METRIC, memory / (registered["MEMORY"] * u.MIB) * 100)
            record(host, u.MEMORY_METRIC, memory / (registered["MEMORY"] * u.MIB) * 100, HOST_NAMESPACE)


def _task_report(
    plane: ControlPlane, region: str, instance_arn: str, where: str, entry: Any
) -> tuple[Task, list[u.ContainerSample]]:
    if not isinstance(entry, dict):
        raise InvalidParameterException(f"{where} must be an object with task and containers.")
    arn = entry.get("task")
    task = plane.store.get_task(arn) if isinstance(arn, str) else None
    if task is None or task.region != region:
        raise InvalidParameterException(f"{where}.task: {arn!r} was not found.")
    if task.container_instance_arn != instance_arn:
        raise InvalidParameterException(f"{where}.task: task {task.id} is not placed on {instance_arn}.")
    containers = entry.get("containers")
    if not isinstance(containers, list) or not containers:
        raise InvalidParameterException(f"{where}.containers must list at least one container.")
    names = {c.name for c in task.containers}
    samples: list[u.ContainerSample] = []
    for j, item in enumerate(containers):
        at = f"{where}.containers[{j}]"
        if not isinstance(item, dict):
            raise InvalidParameterException(f"{at} must be an object.")
        name = item.get("containerName")
        if not isinstance(name, str) or name not in names:
            raise InvalidParameterException(f"{at}.containerName: task {task.id} has no container {name!r}.")
        if any(s.name == name for s in samples):
            raise InvalidParameterException(f"{at}.containerName: {name} is reported twice.")
        cpu_ns = _counter(item, "cpuNanoseconds", at)
        seconds = item.get("seconds")
        if cpu_ns is not None and (
            not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= u.MAX_SAMPLE_S
        ):
            raise InvalidParameterException(
                f"{at}.seconds must be a number above 0 and at most {u.MAX_SAMPLE_S:g} with cpuNanoseconds."
            )
        if cpu_ns is None and seconds is not None:
            raise InvalidParameterException(f"{at}.seconds is only given with cpuNanoseconds.")
        samples.append(u.ContainerSample(name, cpu_ns, float(seconds) if cpu_ns is not None else None,
                                         _counter(item, "memoryBytes", at)))
    return task, samples


def _counter(item: dict[str, Any], key: str, where: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNTER:
        raise InvalidParameterException(f"{where}.{key} must be an integer from 0 to {MAX_COUNTER}.")
    return value
