"""UpdateContainerInstancesState (ACTIVE / DRAINING) and DeregisterContainerInstance.

DRAINING, as in ECS: nothing new is placed on the instance, and the service scheduler replaces
the service tasks on it the way a rolling deployment replaces an old deployment's tasks
(``service_controller`` shows them to ``core/service_reconcile`` as tasks of no current
deployment): replacements start first, as far as maximumPercent allows, and a healthy old copy is
stopped (deregistered and drained through the load balancer first) only while the service keeps
minimumHealthyPercent healthy. Tasks started outside a service keep running. ACTIVE again makes
the instance placeable.

DeregisterContainerInstance: refused while tasks run on the instance unless ``force``; forced,
those tasks are left running on the host and no longer tracked (ECS: "orphaned"), service tasks
among them are replaced elsewhere and their targets deregistered. The instance goes INACTIVE; its
agent's calls are refused from then on, and it registers again (a new registration) only when
restarted.
"""

from __future__ import annotations

from typing import Any

from portside.control.clusters import describe_instance
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.lifecycle import ContainerStatus, StopCode, TaskStatus
from portside.errors import ClientException, InvalidParameterException

SETTABLE = ("ACTIVE", "DRAINING")
MAX_INSTANCES = 10
REASON_DEREGISTERED = "Container instance {id} was deregistered while the task ran; it is no longer tracked."


def update_container_instances_state(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    status = params.get("status")
    if status not in SETTABLE:
        raise InvalidParameterException(f"status must be one of {', '.join(SETTABLE)}.")
    references = params.get("containerInstances") or []
    if not references:
        raise InvalidParameterException("containerInstances can not be empty.")
    if len(references) > MAX_INSTANCES:
        raise InvalidParameterException(f"containerInstances can have at most {MAX_INSTANCES} items.")
    known = _instances(plane, region, cluster["clusterName"])
    found, failures = [], []
    with plane.store.transaction():
        for reference in references:
            body = known.get(reference) or known.get(_arn(plane, region, cluster["clusterName"], reference))
            if body is None or body["status"] not in SETTABLE:
                failures.append({"arn": _arn(plane, region, cluster["clusterName"], reference), "reason": "MISSING"})
                continue
            if body["status"] != status:
                body["status"] = status
                body["version"] = body.get("version", 1) + 1
                plane.store.put_container_instance(region, cluster["clusterName"], body)
            found.append(body)
    plane.changed("instances")
    return {"containerInstances": [describe_instance(plane, b) for b in found], "failures": failures}


def deregister_container_instance(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    reference = params.get("containerInstance")
    if not reference:
        raise InvalidParameterException("containerInstance can not be blank.")
    known = _instances(plane, region, cluster["clusterName"])
    body = known.get(reference) or known.get(_arn(plane, region, cluster["clusterName"], reference))
    if body is None or body["status"] == "INACTIVE":
        raise ClientException("The referenced container instance was not found.")
    live = plane.store.live_tasks_on(body["containerInstanceArn"])
    if live and not params.get("force"):
        raise InvalidParameterException("Found running tasks on the instance.")
    now = plane.clock()
    orphaned = []
    with plane.store.transaction():
        for task in live:
            reason = REASON_DEREGISTERED.format(id=body.get("ec2InstanceId", ""))
            task.request_stop(StopCode.SERVICE_SCHEDULER_INITIATED.value, reason, now)
            for container in task.containers:
                if container.last_status is not ContainerStatus.STOPPED:
                    container.last_status = ContainerStatus.STOPPED
                    container.reason = container.reason or reason
            task.advance(TaskStatus.STOPPED, now)
            plane.store.put_task(task, assigned=False)  # the agent is not told: the task is orphaned
            orphaned.append(task)
        described = describe_instance(plane, body)
        body["status"] = "INACTIVE"
        body["version"] = body.get("version", 1) + 1
        plane.store.put_container_instance(region, cluster["clusterName"], body)
    for task in orphaned:
        plane.task_changed(task)  # the service controller deregisters targets and replaces service tasks
    plane.changed("instances")
    described["status"] = "INACTIVE"
    return {"containerInstance": described}


def _instances(plane: ControlPlane, region: str, cluster: str) -> dict[str, dict[str, Any]]:
    out = {}
    for body in plane.store.list_container_instances(region, cluster):
        out[body["containerInstanceArn"]] = body
    return out


def _arn(plane: ControlPlane, region: str, cluster: str, reference: str) -> str:
    if reference.startswith("arn:"):
        return reference
    return arns.container_instance_arn(region, plane.account, cluster, reference)
