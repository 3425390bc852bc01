"""ListServiceDeployments and DescribeServiceDeployments: a service's deployments as ECS's service
deployment records (the mapping is core/service_deployments.py)."""

from __future__ import annotations

from typing import Any

from portside.control import services
from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core import service_deployments as records
from portside.errors import InvalidParameterException

MAX_DESCRIBE = 20
LIST_STATUSES = (
    "PENDING",
    "SUCCESSFUL",
    "STOPPED",
    "STOP_REQUESTED",
    "IN_PROGRESS",
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_SUCCESSFUL",
    "ROLLBACK_FAILED",
)


def list_service_deployments(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = services.require_service(plane, region, params.get("cluster"), params.get("service"))
    wanted = params.get("status") or []
    window = params.get("createdAt") or {}
    after, before = (
        _time(window.get("after"), "createdAt.after"),
        _time(window.get("before"), "createdAt.before"),
    )
    found = []
    for record in _records(plane, body):
        if wanted and record["status"] not in wanted:
            continue
        if (after is not None and record["createdAt"] < after) or (
            before is not None and record["createdAt"] > before
        ):
            continue
        found.append(records.brief(record))
    page, token = paginate(found, params, limit=100, default=20)
    out: dict[str, Any] = {"serviceDeployments": page}
    if token:
        out["nextToken"] = token
    return out


def describe_service_deployments(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    references = params.get("serviceDeploymentArns") or []
    if not references or len(references) > MAX_DESCRIBE:
        raise InvalidParameterException(f"serviceDeploymentArns must have 1 to {MAX_DESCRIBE} items.")
    found, failures = [], []
    for reference in references:
        record = _find(plane, region, reference)
        if record is None:
            failures.append({"arn": reference, "reason": "MISSING", "detail": "No such service deployment."})
        else:
            found.append(record)
    return {"serviceDeployments": found, "failures": failures}


def _find(plane: ControlPlane, region: str, reference: Any) -> dict[str, Any] | None:
    parts = arns.split_arn(reference) if isinstance(reference, str) else None
    if parts is None or parts["region"] != region or parts["account"] != plane.account:
        return None
    kind, _, path = parts["resource"].partition("/")
    pieces = path.split("/")
    if kind != "service-deployment" or len(pieces) != 3:
        return None
    cluster, name, _id = pieces
    body = plane.store.get_service(services.service_arn(plane, region, cluster, name))
    if body is None:
        return None
    return next((r for r in _records(plane, body) if r["serviceDeploymentArn"] == reference), None)


def _records(plane: ControlPlane, body: dict[str, Any]) -> list[dict[str, Any]]:
    shown = services.render(plane, body)["deployments"]
    counts = {d["id"]: (d["runningCount"], d["pendingCount"]) for d in shown}
    return records.render(body, counts)


def _time(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidParameterException(f"{field} must be a timestamp.")
