"""Application Auto Scaling for ECS services: scalable targets, scaling activities, and what the
scaler loop calls (spec alb.md §4.2; policies are in ``control/scaling_policies.py``).

The API (``X-Amz-Target: AnyScaleFrontendService.<Action>``, table in ``api/autoscaling.py``)
serves ServiceNamespace ``ecs`` with ScalableDimension ``ecs:service:DesiredCount`` and ResourceId
``service/<cluster>/<service>``; other namespaces are refused as AWS refuses an unsupported
combination. Records are kept AWS-shaped as JSON in the ``aas_*`` tables, keyed by region;
members whose names start with ``_`` are portside's own (the scaler's cooldown bookkeeping) and
are never rendered.

Who writes what: the API writes targets and policies; :func:`apply_decision` (the scaler loop)
is the only writer of a target's ``_lastScaleOutAt``/``_lastScaleInAt``/``_scaleOutBase``, and it
moves the service's desiredCount only through ``services.update_service``, as AWS's service does
through ECS UpdateService. Registering a target whose service's desired count is outside
[MinCapacity, MaxCapacity] moves it inside at once ("it changes the resource's current capacity
to a value that is inside of this range" [BC]), recorded as AWS records it ("minimum capacity was
set to 2").

Errors are :class:`AutoScalingError` with the model's codes: ValidationException,
ObjectNotFoundException, InvalidNextTokenException. Messages quoted from AWS where known
(``No scalable target registered for service namespace: ...``, ``minimum capacity was set to``);
the rest are portside's, naming the member and the rule. ConcurrentUpdateException is never
raised: one event loop applies every change in order.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from portside.control import services
from portside.control.cloudwatch import managed_alarms
from portside.control.plane import ControlPlane
from portside.core.autoscale import Decision, Direction, NotScaledReason, Suspension
from portside.errors import PortsideError

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
MAX_DESCRIBE_TARGETS = 50  # DescribeScalableTargets MaxResults: 1-50, default 50 [BC]
MAX_DESCRIBE_ACTIVITIES = 50  # DescribeScalingActivities MaxResults: 1-50, default 50 [BC]
ACTIVITY_RETENTION_S = 6 * 7 * 24 * 3600.0  # "scaling activities ... from the previous six weeks" [BC]
SUSPENDED_STATE_MEMBERS = ("DynamicScalingInSuspended", "DynamicScalingOutSuspended", "ScheduledScalingSuspended")
_RESOURCE_ID = re.compile(r"^service/(?P<cluster>[A-Za-z0-9_-]{1,255})/(?P<service>[A-Za-z0-9_-]{1,255})$")


class AutoScalingError(PortsideError):
    """An Application Auto Scaling error: ``code`` is the model's error shape name."""

    status_hint = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validation(message: str) -> AutoScalingError:
    return AutoScalingError("ValidationException", message)


def not_found(message: str) -> AutoScalingError:
    return AutoScalingError("ObjectNotFoundException", message)


# --------------------------------------------------------------------------- keys and rows

TargetKey = tuple[str, str, str]  # (ServiceNamespace, ResourceId, ScalableDimension)


def target_key(params: dict[str, Any]) -> TargetKey:
    """The request's (namespace, resource id, dimension), checked to name an ECS service's desired
    count; ValidationException otherwise."""
    namespace, resource_id, dimension = params["ServiceNamespace"], params["ResourceId"], params["ScalableDimension"]
    if namespace != NAMESPACE or dimension != DIMENSION or not resource_id.startswith("service/"):
        raise validation("Unsupported service namespace, resource type or scalable dimension")
    if not _RESOURCE_ID.match(resource_id):
        raise validation(
            f"Resource ID '{resource_id}' is not valid for an ECS service: expected service/<cluster-name>/<service-name>"
        )
    return namespace, resource_id, dimension


def split_resource_id(resource_id: str) -> tuple[str, str]:
    """``service/<cluster>/<service>`` -> (cluster, service)."""
    match = _RESOURCE_ID.match(resource_id)
    if match is None:
        raise validation(f"Resource ID '{resource_id}' is not valid for an ECS service")
    return match["cluster"], match["service"]


def get_target(plane: ControlPlane, region: str, key: TargetKey) -> dict[str, Any] | None:
    return plane.store.scalable_target(region, key)


def require_target(plane: ControlPlane, region: str, key: TargetKey) -> dict[str, Any]:
    """The registered target, or ObjectNotFoundException in AWS's words."""
    body = get_target(plane, region, key)
    if body is None:
        raise not_found(
            f"No scalable target registered for service namespace: {key[0]}, resource ID: {key[1]}, "
            f"scalable dimension: {key[2]}"
        )
    return body


def _put_target(plane: ControlPlane, region: str, body: dict[str, Any]) -> None:
    # Upsert in place, so the listing order stays creation order (what DescribeScalableTargets lists in).
    plane.store.put_scalable_target(region, body)


def public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- paging


def page(items: list[Any], params: dict[str, Any], limit: int) -> tuple[list[Any], str | None]:
    """One page per MaxResults (1-``limit``, default ``limit``) from NextToken, and the next token."""
    size = params.get("MaxResults")
    if size is None:
        size = limit
    if size < 1 or size > limit:
        bound = "greater than or equal to 1" if size < 1 else f"less than or equal to {limit}"
        raise validation(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value {bound}"
        )
    token = params.get("NextToken")
    start = 0
    if token:
        try:
            start = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
            if not isinstance(start, int) or isinstance(start, bool) or start < 0:
                raise ValueError(token)
        except (ValueError, KeyError, TypeError):
            raise AutoScalingError("InvalidNextTokenException", "The NextToken value is not valid.") from None
    end = start + size
    following = base64.urlsafe_b64encode(json.dumps({"o": end}).encode()).decode() if end < len(items) else None
    return items[start:end], following


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        result["NextToken"] = token
    return result


# --------------------------------------------------------------------------- scalable targets


def register_scalable_target(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = target_key(params)
    cluster, service_name = split_resource_id(key[1])
    service = plane.store.get_service(services.service_arn(plane, region, cluster, service_name))
    if service is None or service["status"] != "ACTIVE":
        raise validation(f"ECS service doesn't exist: {key[1]}")
    existing = get_target(plane, region, key)
    low, high = params.get("MinCapacity"), params.get("MaxCapacity")
    if existing is None and (low is None or high is None):
        raise validation("MinCapacity and MaxCapacity are required when registering a new scalable target.")
    for member, value in (("MinCapacity", low), ("MaxCapacity", high)):
        if value is not None and value < 0:
            raise validation(f"{member} must be greater than or equal to 0 for an ECS service; got {value}.")
    now = plane.clock()
    body = existing or {
        "ServiceNamespace": key[0],
        "ResourceId": key[1],
        "ScalableDimension": key[2],
        "RoleARN": (
            f"arn:aws:iam::{plane.account}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_ECSService"
        ),
        "CreationTime": now,
        "SuspendedState": {member: False for member in SUSPENDED_STATE_MEMBERS},
        "ScalableTargetARN": f"arn:aws:application-autoscaling:{region}:{plane.account}:scalable-target/{secrets.token_hex(18)}",
        "_lastScaleOutAt": None,
        "_lastScaleInAt": None,
        "_scaleOutBase": None,
    }
    new_low = low if low is not None else body["MinCapacity"]
    new_high = high if high is not None else body["MaxCapacity"]
    if new_low > new_high:
        raise validation(f"Minimum capacity cannot be greater than maximum capacity ({new_low} > {new_high}).")
    body["MinCapacity"], body["MaxCapacity"] = new_low, new_high
    if params.get("RoleARN"):
        body["RoleARN"] = params["RoleARN"]
    for member, value in (params.get("SuspendedState") or {}).items():
        if member in SUSPENDED_STATE_MEMBERS and value is not None:
            body["SuspendedState"][member] = bool(value)
    if params.get("Tags") and existing is None:
        body["_tags"] = dict(params["Tags"])
    desired = service["desiredCount"]
    with plane.store.transaction():
        _put_target(plane, region, body)
        move_into_range(plane, region, body, desired, now)
    return {"ScalableTargetARN": body["ScalableTargetARN"]}


def describe_scalable_targets(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("ResourceIds")
    bodies = plane.store.scalable_targets(region, params["ServiceNamespace"], params.get("ScalableDimension"))
    if wanted:
        bodies = [b for b in bodies if b["ResourceId"] in wanted]
    items, token = page(bodies, params, MAX_DESCRIBE_TARGETS)
    return _with_token({"ScalableTargets": [public(b) for b in items]}, token)


def deregister_scalable_target(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = (params["ServiceNamespace"], params["ResourceId"], params["ScalableDimension"])
    if get_target(plane, region, key) is None:
        raise not_found(
            f"No scalable target found for service namespace: {key[0]}, resource ID: {key[1]}, "
            f"scalable dimension: {key[2]}"
        )
    # "Deregistering a scalable target deletes the scaling policies and the scheduled actions that
    # are associated with it" [BC]; its activities stay for their six weeks; the alarms its target
    # tracking policies own go with them.
    with plane.store.transaction():
        owned = {p["PolicyARN"] for p in plane.store.policies_of(region, key)}
        plane.store.delete_scalable_target(region, key)
        plane.store.delete_scheduled_actions_of(region, key)
        managed_alarms.delete_alarms_owned_by(plane, region, owned)
    return {}


# --------------------------------------------------------------------------- scaling activities


def describe_scaling_activities(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    bodies = plane.store.scaling_activities(
        region,
        params["ServiceNamespace"],
        plane.clock() - ACTIVITY_RETENTION_S,
        params.get("ResourceId"),
        params.get("ScalableDimension"),
    )
    if not params.get("IncludeNotScaledActivities"):
        bodies = [b for b in bodies if not b.get("NotScaledReasons")]
    items, token = page(bodies, params, MAX_DESCRIBE_ACTIVITIES)
    return _with_token({"ScalingActivities": items}, token)


def record_activity(
    plane: ControlPlane,
    region: str,
    resource_id: str,
    *,
    description: str,
    cause: str,
    status_code: str,
    start_time: float,
    end_time: float | None = None,
    status_message: str | None = None,
    not_scaled_reasons: list[dict[str, Any]] | None = None,
    namespace: str = NAMESPACE,
    dimension: str = DIMENSION,
) -> dict[str, Any]:
    """Store one scaling activity (as DescribeScalingActivities shows it) and return it.

    ``status_code`` is one of the model's ``Pending``, ``InProgress``, ``Successful``,
    ``Overridden``, ``Unfulfilled``, ``Failed``. A not-scaled activity (``not_scaled_reasons``)
    identical in cause and reason codes to the target's latest activity is not stored again, so an
    alarm that keeps firing at the maximum leaves one record, not one a minute. Activities older
    than six weeks are dropped.
    """
    activity: dict[str, Any] = {
        "ActivityId": str(uuid.uuid4()),
        "ServiceNamespace": namespace,
        "ResourceId": resource_id,
        "ScalableDimension": dimension,
        "Description": description,
        "Cause": cause,
        "StartTime": start_time,
        "StatusCode": status_code,
    }
    if end_time is not None:
        activity["EndTime"] = end_time
    if status_message is not None:
        activity["StatusMessage"] = status_message
    if not_scaled_reasons:
        activity["NotScaledReasons"] = not_scaled_reasons
        last = plane.store.latest_activity(region, (namespace, resource_id, dimension))
        if last is not None:
            codes = [r["Code"] for r in not_scaled_reasons]
            if last["Cause"] == cause and [r["Code"] for r in last.get("NotScaledReasons") or []] == codes:
                return last
    with plane.store.transaction():
        plane.store.add_activity(
            region, (namespace, resource_id, dimension), activity, forget_before=start_time - ACTIVITY_RETENTION_S
        )
    return activity


def move_into_range(plane: ControlPlane, region: str, target: dict[str, Any], desired: int, now: float) -> None:
    """Move a desired count outside the target's [MinCapacity, MaxCapacity] to the nearest bound,
    recorded as AWS records it ("minimum capacity was set to 2")."""
    low, high = target["MinCapacity"], target["MaxCapacity"]
    if desired < low or desired > high:
        bound, value = ("minimum", low) if desired < low else ("maximum", high)
        _set_desired(plane, region, target, value, f"{bound} capacity was set to {value}", now)


def _set_desired(plane: ControlPlane, region: str, target: dict[str, Any], count: int, cause: str, now: float) -> bool:
    """Set the service's desired count through ECS UpdateService and record the activity; False
    (and a Failed activity) if ECS refused."""
    cluster, service_name = split_resource_id(target["ResourceId"])
    description = f"Setting desired count to {count}."
    try:
        services.update_service(plane, region, {"cluster": cluster, "service": service_name, "desiredCount": count})
    except PortsideError as exc:
        record_activity(
            plane, region, target["ResourceId"], description=description, cause=cause, status_code="Failed",
            start_time=now, end_time=now, status_message=f"Failed to set desired count to {count}. Reason: {exc.message}",
        )
        return False
    record_activity(
        plane, region, target["ResourceId"], description=description, cause=cause, status_code="Successful",
        start_time=now, end_time=now,
        status_message=f"Successfully set desired count to {count}. Change successfully fulfilled by ecs.",
    )
    return True


# --------------------------------------------------------------------------- the scaler loop's side


@dataclass(frozen=True)
class ScalableTargetState:
    """One registered target as the scaler loop needs it (inputs to ``core.autoscale.decide``)."""

    region: str
    resource_id: str
    cluster: str
    service: str
    min_capacity: int
    max_capacity: int
    suspension: Suspension
    last_scale_out_at: float | None
    last_scale_in_at: float | None
    scale_out_base: int | None


def scalable_targets(plane: ControlPlane) -> list[ScalableTargetState]:
    """Every registered ECS target, in every region, in registration order."""
    out = []
    for region, body in plane.store.scalable_targets_everywhere(NAMESPACE, DIMENSION):
        cluster, service_name = split_resource_id(body["ResourceId"])
        suspended = body["SuspendedState"]
        out.append(
            ScalableTargetState(
                region, body["ResourceId"], cluster, service_name, body["MinCapacity"], body["MaxCapacity"],
                Suspension(scale_in=suspended["DynamicScalingInSuspended"], scale_out=suspended["DynamicScalingOutSuspended"]),
                body.get("_lastScaleOutAt"), body.get("_lastScaleInAt"), body.get("_scaleOutBase"),
            )
        )
    return out


def deployment_in_progress(service: dict[str, Any]) -> bool:
    """An ECS deployment is rolling: more than one deployment, or the primary still IN_PROGRESS.
    Application Auto Scaling "turns off scale-in processes while Amazon ECS deployments are in
    progress" [ECS-AS]."""
    deployments = service.get("deployments") or []
    return len(deployments) > 1 or any(d.get("rolloutState") == "IN_PROGRESS" for d in deployments)


def apply_decision(plane: ControlPlane, region: str, resource_id: str, decision: Decision, now: float) -> dict[str, Any]:
    """Carry out ``decision`` for the target ``resource_id``: move the service's desired count,
    note the cooldown start, record the activity; for a not-scaled decision, record only that.
    Returns the activity."""
    target = require_target(plane, region, (NAMESPACE, resource_id, DIMENSION))
    if not decision.scales:
        assert decision.not_scaled_reason is not None
        reason: dict[str, Any] = {"Code": decision.not_scaled_reason.value}
        if decision.not_scaled_reason is NotScaledReason.ALREADY_AT_MAX_CAPACITY:
            reason["MaxCapacity"] = target["MaxCapacity"]
        elif decision.not_scaled_reason is NotScaledReason.ALREADY_AT_MIN_CAPACITY:
            reason["MinCapacity"] = target["MinCapacity"]
        else:
            reason["CurrentCapacity"] = decision.desired
        return record_activity(
            plane, region, resource_id, description="Attempting to scale due to alarm triggered",
            cause=decision.reason, status_code="Failed", start_time=now, end_time=now, not_scaled_reasons=[reason],
        )
    with plane.store.transaction():
        if _set_desired(plane, region, target, decision.desired, decision.reason, now):
            if decision.direction is Direction.OUT:
                target["_lastScaleOutAt"] = now
                target["_scaleOutBase"] = decision.base_capacity
            else:
                target["_lastScaleInAt"] = now
            _put_target(plane, region, target)
    latest = plane.store.latest_activity_of_resource(region, resource_id)
    assert latest is not None  # _set_desired recorded one
    return latest
