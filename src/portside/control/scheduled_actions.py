"""PutScheduledAction, DescribeScheduledActions, DeleteScheduledAction, and the round that runs
due actions (docs/scheduled-scaling.md).

A scheduled action belongs to a registered scalable target and sets its MinCapacity and/or
MaxCapacity when its ``Schedule`` fires (``core/schedule.py`` parses it and says when). Running an
action does what AWS does: the target's range changes, a scaling activity records it
("Setting min capacity to 3 and max capacity to 10", cause "scheduled action name X was
triggered"), and a desired count now outside the range is moved inside through ECS UpdateService,
recorded as its own activity ("minimum capacity was set to 3").

Stored bodies are AWS-shaped; ``_nextFireAt`` (epoch seconds, or None once it never fires again) is
portside's own. :func:`run_due` is the only writer of it after the put: when the clock passes it,
the action runs once, however many times it would have fired while the server was down, and the
next time is computed from now. While the target's ``ScheduledScalingSuspended`` is true a due
action is skipped, not kept for later (AWS: actions that would have run during the suspension do
not run on resume).

Errors, as the model names them: ObjectNotFoundException (no such target or action),
ValidationException (the member and the rule), LimitExceededException (200 actions per target, AWS's
quota), InvalidNextTokenException.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portside.control import autoscaling, services
from portside.control.autoscaling import AutoScalingError, not_found, page, require_target, target_key, validation
from portside.control.plane import ControlPlane
from portside.core import schedule as core

MAX_DESCRIBE_ACTIONS = 50  # DescribeScheduledActions MaxResults: 1-50, default 50 [BC]
MAX_ACTIONS_PER_TARGET = 200  # AWS's quota: scheduled actions per scalable target
DEFAULT_TIMEZONE = "UTC"


def _public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("_")}


def _epoch(value: Any) -> float:
    """A timestamp member as the JSON protocol carries it (epoch seconds, or ISO 8601) -> epoch seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise validation(f"Timezone '{name}' is not a valid IANA time zone name (for example UTC or America/New_York).") from None


def _not_found(key: tuple[str, str, str], name: str) -> Exception:
    return not_found(
        f"No scheduled action found for service namespace: {key[0]}, resource ID: {key[1]}, "
        f"scalable dimension: {key[2]}, scheduled action name: {name}"
    )


def next_fire_of(body: dict[str, Any], after: float) -> float | None:
    """When the stored action ``body`` fires next after ``after`` (None: never again)."""
    return core.next_fire(
        core.parse(body["Schedule"]), after, zone=ZoneInfo(body.get("Timezone") or DEFAULT_TIMEZONE),
        put_at=body["_putAt"], start=body.get("StartTime"), end=body.get("EndTime"),
    )


# --------------------------------------------------------------------------- operations


def put_scheduled_action(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = target_key(params)
    require_target(plane, region, key)
    name = params["ScheduledActionName"]
    existing = plane.store.scheduled_action(region, key, name)
    if existing is None and len(plane.store.scheduled_actions(region, *key)) >= MAX_ACTIONS_PER_TARGET:
        raise AutoScalingError(
            "LimitExceededException",
            f"A scalable target has at most {MAX_ACTIONS_PER_TARGET} scheduled actions; {key[1]} has that many already.",
        )
    now = plane.clock()
    body: dict[str, Any] = dict(existing) if existing else {
        "ScheduledActionName": name,
        "ScheduledActionARN": (
            f"arn:aws:autoscaling:{region}:{plane.account}:scheduledAction:{uuid.uuid4()}:"
            f"resource/{key[0]}/{key[1]}:scheduledActionName/{name}"
        ),
        "ServiceNamespace": key[0],
        "ResourceId": key[1],
        "ScalableDimension": key[2],
        "CreationTime": now,
    }
    # An update changes what it names and keeps the rest, as AWS does.
    for member in ("Schedule", "Timezone"):
        if params.get(member) is not None:
            body[member] = params[member]
    for member in ("StartTime", "EndTime"):
        if params.get(member) is not None:
            body[member] = _epoch(params[member])
    if params.get("ScalableTargetAction") is not None:
        body["ScalableTargetAction"] = {k: v for k, v in params["ScalableTargetAction"].items() if v is not None}
    _check(body, now)
    body["_putAt"] = now
    body["_nextFireAt"] = next_fire_of(body, now)
    with plane.store.transaction():
        plane.store.put_scheduled_action(region, key, body)
    return {}


def _check(body: dict[str, Any], now: float) -> None:
    """ValidationException naming the member and the rule, before anything is written."""
    if not body.get("Schedule"):
        raise validation("Schedule is required when creating a scheduled action.")
    try:
        schedule = core.parse(body["Schedule"])
    except core.ScheduleError as exc:
        raise validation(str(exc)) from None
    zone = _zone(body.get("Timezone") or DEFAULT_TIMEZONE)
    action = body.get("ScalableTargetAction") or {}
    low, high = action.get("MinCapacity"), action.get("MaxCapacity")
    if low is None and high is None:
        raise validation("ScalableTargetAction must set MinCapacity, MaxCapacity or both.")
    for member, value in (("MinCapacity", low), ("MaxCapacity", high)):
        if value is not None and value < 0:
            raise validation(f"ScalableTargetAction.{member} must be greater than or equal to 0; got {value}.")
    if low is not None and high is not None and low > high:
        raise validation(f"ScalableTargetAction: minimum capacity cannot be greater than maximum capacity ({low} > {high}).")
    start, end = body.get("StartTime"), body.get("EndTime")
    if start is not None and end is not None and start >= end:
        raise validation("StartTime must be before EndTime.")
    if end is not None and end <= now:
        raise validation("EndTime is in the past: the scheduled action would never run.")
    upcoming = core.next_fire(schedule, now, zone=zone, put_at=now, start=start, end=end)
    if upcoming is None:
        raise validation(
            f"Schedule '{body['Schedule']}' never fires after now"
            + (" within StartTime and EndTime" if start is not None or end is not None else "")
            + ": the scheduled action would never run."
        )


def describe_scheduled_actions(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    bodies = plane.store.scheduled_actions(
        region, params["ServiceNamespace"], params.get("ResourceId"), params.get("ScalableDimension")
    )
    names = params.get("ScheduledActionNames")
    if names:
        bodies = [b for b in bodies if b["ScheduledActionName"] in names]
    items, token = page(bodies, params, MAX_DESCRIBE_ACTIONS)
    result: dict[str, Any] = {"ScheduledActions": [_public(b) for b in items]}
    if token is not None:
        result["NextToken"] = token
    return result


def delete_scheduled_action(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = (params["ServiceNamespace"], params["ResourceId"], params["ScalableDimension"])
    name = params["ScheduledActionName"]
    with plane.store.transaction():
        if not plane.store.delete_scheduled_action(region, key, name):
            raise _not_found(key, name)
    return {}


# --------------------------------------------------------------------------- the round


def run_due(plane: ControlPlane, now: float) -> list[str]:
    """Run every action whose time has come (``now``: the round's clock) and note when each fires
    next; returns the ARNs of the actions that ran."""
    ran = []
    for region, body in plane.store.scheduled_actions_everywhere():
        due = body.get("_nextFireAt")
        if due is None or due > now:
            continue
        key = (body["ServiceNamespace"], body["ResourceId"], body["ScalableDimension"])
        try:
            with plane.store.transaction():
                target = plane.store.scalable_target(region, key)
                runs = target is not None and not target["SuspendedState"].get("ScheduledScalingSuspended")
                if runs:
                    assert target is not None
                    _run(plane, region, body, target, now)
                # Only if no put changed the action since it was read (a put on another replica):
                # else all of this rolls back and the next round looks at the action as it is now.
                if not plane.store.replace_scheduled_action(region, key, body, {**body, "_nextFireAt": next_fire_of(body, now)}):
                    raise _ChangedMeanwhile
        except _ChangedMeanwhile:
            continue
        if runs:
            ran.append(body["ScheduledActionARN"])
    return ran


class _ChangedMeanwhile(Exception):
    """The action was put or deleted while the round was running it."""


def _run(plane: ControlPlane, region: str, action: dict[str, Any], target: dict[str, Any], now: float) -> None:
    wanted = action["ScalableTargetAction"]
    low = wanted.get("MinCapacity", target["MinCapacity"])
    high = wanted.get("MaxCapacity", target["MaxCapacity"])
    setting = " and ".join(
        f"{word} capacity to {value}" for word, member, value in (("min", "MinCapacity", low), ("max", "MaxCapacity", high))
        if member in wanted
    )
    cause = f"scheduled action name {action['ScheduledActionName']} was triggered"
    if low > high:
        autoscaling.record_activity(
            plane, region, target["ResourceId"], description=f"Setting {setting}", cause=cause, status_code="Failed",
            start_time=now, end_time=now,
            status_message=f"Failed to set {setting}: the minimum capacity would be above the maximum ({low} > {high}).",
        )
        return
    target["MinCapacity"], target["MaxCapacity"] = low, high
    plane.store.put_scalable_target(region, target)
    autoscaling.record_activity(
        plane, region, target["ResourceId"], description=f"Setting {setting}", cause=cause, status_code="Successful",
        start_time=now, end_time=now, status_message=f"Successfully set {setting}. Change successfully fulfilled by ecs.",
    )
    cluster, service_name = autoscaling.split_resource_id(target["ResourceId"])
    service = plane.store.get_service(services.service_arn(plane, region, cluster, service_name))
    if service is None or service["status"] != "ACTIVE":
        return
    autoscaling.move_into_range(plane, region, target, service["desiredCount"], now)
