"""ECS's service deployment records (ListServiceDeployments, DescribeServiceDeployments) from a
service's deployments as portside keeps them (pure: the service's record in, ECS's shapes out).

A portside deployment (``ecs-svc/<19 digits>``, status PRIMARY/ACTIVE, rolloutState
IN_PROGRESS/COMPLETED/FAILED) is one service deployment whose id is those digits; its target
service revision has the same id. Its status:

- rolled back by the circuit breaker: ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL or
  ROLLBACK_FAILED as the deployment back to the last good revision goes (that deployment is the
  rollback of this one, not a service deployment of its own, as on ECS);
- rolloutState COMPLETED: SUCCESSFUL; FAILED without rollback: STOPPED;
- still rolling out: IN_PROGRESS while it is the service's PRIMARY deployment, STOPPED once a
  newer deployment replaced it (or the service was deleted).
"""

from __future__ import annotations

from typing import Any

from portside.core.deployment import circuit_breaker_threshold

HISTORY_KEY = "_pastDeployments"
ROLLBACK_OF = "_rollbackOf"
ROLLED_BACK_BY = "_rolledBackBy"
#: Deployments a service keeps once they are over (ECS keeps 90 days of them).
MAX_HISTORY = 20


def short_id(deployment_id: str) -> str:
    return deployment_id.rsplit("/", 1)[-1]


def deployment_arn(service_arn: str, deployment_id: str, kind: str = "service-deployment") -> str:
    """``arn:aws:ecs:REGION:ACCOUNT:<kind>/CLUSTER/SERVICE/ID`` for the service's deployment."""
    prefix, _, path = service_arn.partition(":service/")
    return f"{prefix}:{kind}/{path}/{short_id(deployment_id)}"


def all_deployments(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Every deployment the service holds or held, oldest first, rollbacks left out."""
    known = list(service.get(HISTORY_KEY) or []) + list(reversed(service.get("deployments") or []))
    return [d for d in sorted(known, key=lambda d: d["createdAt"]) if not d.get(ROLLBACK_OF)]


def status_of(deployment: dict[str, Any], by_id: dict[str, dict[str, Any]], current: bool) -> str:
    """ECS's status for ``deployment`` (``current``: it is still among the service's deployments)."""
    rollback_id = deployment.get(ROLLED_BACK_BY)
    if rollback_id:
        rollback = by_id.get(rollback_id, {})
        state = rollback.get("rolloutState", "COMPLETED")
        return {"IN_PROGRESS": "ROLLBACK_IN_PROGRESS", "FAILED": "ROLLBACK_FAILED"}.get(
            state, "ROLLBACK_SUCCESSFUL"
        )
    if deployment["rolloutState"] == "COMPLETED":
        return "SUCCESSFUL"
    if deployment["rolloutState"] == "FAILED":
        return "STOPPED"
    return "IN_PROGRESS" if current and deployment["status"] == "PRIMARY" else "STOPPED"


def render(service: dict[str, Any], counts: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Every service deployment of ``service`` as DescribeServiceDeployments shows it, newest first.

    ``counts``: deployment id -> (running, pending) tasks now.
    """
    current = {d["id"] for d in service.get("deployments") or []}
    by_id = {
        d["id"]: d for d in list(service.get(HISTORY_KEY) or []) + list(service.get("deployments") or [])
    }
    listed = all_deployments(service)
    out = []
    for i, deployment in enumerate(listed):
        status = status_of(deployment, by_id, deployment["id"] in current)
        arn = service["serviceArn"]
        running, pending = counts.get(deployment["id"], (0, 0))
        record: dict[str, Any] = {
            "serviceDeploymentArn": deployment_arn(arn, deployment["id"]),
            "serviceArn": arn,
            "clusterArn": service["clusterArn"],
            "createdAt": deployment["createdAt"],
            "startedAt": deployment["createdAt"],
            "updatedAt": deployment["updatedAt"],
            "sourceServiceRevisions": [],
            "targetServiceRevision": {
                "arn": deployment_arn(arn, deployment["id"], "service-revision"),
                "requestedTaskCount": deployment["desiredCount"],
                "runningTaskCount": running,
                "pendingTaskCount": pending,
            },
            "status": status,
            "statusReason": deployment.get("rolloutStateReason", ""),
            "deploymentConfiguration": service.get("deploymentConfiguration", {}),
            "deploymentCircuitBreaker": _breaker(service, deployment, status),
        }
        if i > 0:
            before = listed[i - 1]
            record["sourceServiceRevisions"] = [
                {
                    "arn": deployment_arn(arn, before["id"], "service-revision"),
                    "requestedTaskCount": before["desiredCount"],
                    "runningTaskCount": counts.get(before["id"], (0, 0))[0],
                    "pendingTaskCount": counts.get(before["id"], (0, 0))[1],
                }
            ]
        if status in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"):
            record["finishedAt"] = deployment.get("finishedAt", deployment["updatedAt"])
        elif status == "STOPPED":
            record["stoppedAt"] = deployment.get("finishedAt", deployment["updatedAt"])
        rollback_id = deployment.get(ROLLED_BACK_BY)
        if rollback_id and rollback_id in by_id:
            rollback = by_id[rollback_id]
            record["rollback"] = {
                "reason": deployment.get("rolloutStateReason", "circuit breaker"),
                "startedAt": rollback["createdAt"],
                "serviceRevisionArn": deployment_arn(arn, rollback["id"], "service-revision"),
            }
        out.append(record)
    out.reverse()
    return out


def brief(record: dict[str, Any]) -> dict[str, Any]:
    """ListServiceDeployments' summary of one record."""
    keys = (
        "serviceDeploymentArn",
        "serviceArn",
        "clusterArn",
        "startedAt",
        "createdAt",
        "finishedAt",
        "status",
        "statusReason",
    )
    out = {k: record[k] for k in keys if k in record}
    out["targetServiceRevisionArn"] = record["targetServiceRevision"]["arn"]
    return out


def retire(service: dict[str, Any], deployment: dict[str, Any], now: float) -> None:
    """Keep ``deployment``, leaving the service's deployments, in its history (the newest MAX_HISTORY)."""
    history = list(service.get(HISTORY_KEY) or [])
    history.append({**deployment, "finishedAt": deployment.get("finishedAt", now)})
    service[HISTORY_KEY] = history[-MAX_HISTORY:]


def _breaker(service: dict[str, Any], deployment: dict[str, Any], status: str) -> dict[str, Any]:
    breaker = (service.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
    if not breaker.get("enable"):
        return {"status": "DISABLED", "failureCount": deployment.get("failedTasks", 0), "threshold": 0}
    state = (
        "TRIGGERED"
        if deployment["rolloutState"] == "FAILED"
        else ("MONITORING" if status == "IN_PROGRESS" else "MONITORING_COMPLETE")
    )
    return {
        "status": state,
        "failureCount": deployment.get("failedTasks", 0),
        "threshold": circuit_breaker_threshold(deployment["desiredCount"]),
    }
