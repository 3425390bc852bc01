"""Stopping a task the way its service wants: its load balancer targets drain first.

A task with targets (``task.lb_targets``) is marked DEACTIVATING with desired status STOPPED, and
its targets are deregistered: they drain for their target group's deregistration delay, and its
agent keeps it running meanwhile (``core/state_change.agent_desired_status``). Once none of its
targets is left, the service controller clears ``lb_targets`` (``ServiceController._finish_drains``)
and the agent stops it. A task without targets is stopped at once (``tasks.request_stop``).

Every step is a store write, so any replica may begin it (StopTask through any replica), and the
leader's controller finishes it.
"""

from __future__ import annotations

import logging
from typing import Any

from portside.control import services as svc
from portside.control.elbv2 import targets as elb_targets
from portside.control.plane import ControlPlane
from portside.control.tasks import request_stop
from portside.core.lifecycle import TaskStatus
from portside.core.task import Task
from portside.errors import PortsideError

log = logging.getLogger("portside.services")


def drain_and_stop(
    plane: ControlPlane, arn: str, stop_code: str, reason: str, body: dict[str, Any] | None = None
) -> Task | None:
    """Stop a task; one with load balancer targets is deregistered and drained first.

    ``body``: the service record the caller is editing and will save (the service controller's
    ``sync``), so that the events written here are not lost when the caller saves its copy; None to
    load and save it here.
    """
    task = plane.store.get_task(arn)
    if task is None or task.is_stopped or not task.lb_targets:
        return request_stop(plane, arn, stop_code, reason)
    if task.last_status is TaskStatus.DEACTIVATING:
        return task  # already draining
    now = plane.clock()
    task.request_stop(stop_code, reason, now)
    if task.last_status < TaskStatus.DEACTIVATING:
        task.advance(TaskStatus.DEACTIVATING, now)
    plane.store.put_task(task)
    by_group: dict[str, list[dict[str, Any]]] = {}
    for tg_arn, target_id, port in task.lb_targets:
        by_group.setdefault(tg_arn, []).append({"Id": target_id, "Port": port})
    owned = body is None
    if owned:
        body = service_of(plane, task)
    for tg_arn, items in by_group.items():
        try:
            elb_targets.deregister_targets(plane, task.region, {"TargetGroupArn": tg_arn, "Targets": items})
        except PortsideError as exc:  # the target group is gone: nothing left to drain there
            log.info("deregistering %s: %s", tg_arn, exc.message)
        if body is not None:
            svc.add_event(plane, body, f"(service {body['serviceName']}) deregistered {len(items)} targets in (target-group {tg_arn})")
    if body is not None:
        svc.add_event(
            plane, body,
            f"(service {body['serviceName']}, taskSet {task.started_by}) has begun draining connections on 1 tasks.",
        )
        if owned:
            plane.store.put_service(task.region, body)
    return task


def service_of(plane: ControlPlane, task: Task) -> dict[str, Any] | None:
    """The record of the service the task belongs to, if it belongs to one."""
    if not task.group or not task.group.startswith("service:"):
        return None
    return plane.store.get_service(svc.service_arn(plane, task.region, task.cluster, task.group[8:]))
