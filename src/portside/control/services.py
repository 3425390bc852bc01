"""CreateService, UpdateService, DeleteService, DescribeServices, ListServices.

These operations only write the service's desired state (and a new deployment
when the task definition changes); the service controller
(``control/controllers/services.py``) makes the tasks follow.
"""

from __future__ import annotations

import random
import re
from typing import Any

from portside.control import task_definitions
from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.capacity import refuse_capacity_provider_strategy
from portside.core.tags import check_tags
from portside.core.task import Task
from portside.errors import ClientException, InvalidParameterException, NotFoundError

MAX_DESCRIBE_SERVICES = 10
MAX_LOAD_BALANCERS = 5
MAX_EVENTS = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def service_arn(plane: ControlPlane, region: str, cluster: str, name: str) -> str:
    return arns.ecs_arn(region, plane.account, f"service/{cluster}/{name}")


def new_deployment(plane: ControlPlane, task_definition_arn: str, desired: int, launch_type: str) -> dict[str, Any]:
    now = plane.clock()
    return {
        "id": "ecs-svc/" + "".join(random.choice("0123456789") for _ in range(19)),
        "status": "PRIMARY",
        "taskDefinition": task_definition_arn,
        "desiredCount": desired,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": launch_type,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": "ECS deployment ecs-svc in progress.",
        "_hadRunningTask": False,
    }


def add_event(plane: ControlPlane, body: dict[str, Any], message: str) -> None:
    """Record a service event, newest first; a message repeated while unresolved is suppressed (6 h)."""
    now = plane.clock()
    for event in body["events"][:20]:
        if event["message"] == message and now - event["createdAt"] < 6 * 3600:
            return
    body["events"].insert(0, {"id": arns.stable_hex_id(message, str(now))[:36], "createdAt": now, "message": message})
    del body["events"][MAX_EVENTS:]


# -- operations


def create_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():  # what it reads, too: replicas' writes to the service serialise
        return _create_service(plane, region, params)


def _create_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    name = params.get("serviceName") or ""
    if not _NAME.match(name):
        raise InvalidParameterException(
            "serviceName: up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )
    if params.get("schedulingStrategy", "REPLICA") != "REPLICA":
        raise InvalidParameterException("schedulingStrategy: only REPLICA is supported by portside.")
    desired = params.get("desiredCount")
    if desired is None:
        raise InvalidParameterException("desiredCount is required for services using the REPLICA scheduling strategy.")
    _check_count(desired)
    refuse_capacity_provider_strategy(params)
    arn = service_arn(plane, region, cluster["clusterName"], name)
    existing = plane.store.get_service(arn)
    token = params.get("clientToken")
    if existing is not None and existing["status"] != "INACTIVE":
        if token and existing.get("_clientToken") == token:
            return {"service": render(plane, existing)}
        raise InvalidParameterException("Creation of service was not idempotent.")
    body_td = task_definitions.resolve(plane, region, params.get("taskDefinition"), "TaskDefinition not found.")
    if body_td["status"] != "ACTIVE":
        raise ClientException("TaskDefinition is inactive")
    task_definitions.check_runnable(plane, task_definitions.public(body_td))
    load_balancers = check_load_balancers(plane, region, params.get("loadBalancers") or [], body_td)
    deployment_configuration = _deployment_configuration(params.get("deploymentConfiguration"), None)
    grace = _grace(params.get("healthCheckGracePeriodSeconds", 0))
    launch_type = params.get("launchType") or "EC2"
    now = plane.clock()
    body = {
        "serviceArn": arn,
        "serviceName": name,
        "clusterArn": cluster["clusterArn"],
        "loadBalancers": load_balancers,
        "serviceRegistries": [],
        "status": "ACTIVE",
        "desiredCount": desired,
        "runningCount": 0,
        "pendingCount": 0,
        "launchType": launch_type,
        "taskDefinition": body_td["taskDefinitionArn"],
        "deploymentConfiguration": deployment_configuration,
        "deployments": [new_deployment(plane, body_td["taskDefinitionArn"], desired, launch_type)],
        "events": [],
        "createdAt": now,
        "placementConstraints": list(params.get("placementConstraints") or []),
        "placementStrategy": list(params.get("placementStrategy") or []),
        "healthCheckGracePeriodSeconds": grace,
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "createdBy": f"arn:aws:iam::{plane.account}:root",
        "enableECSManagedTags": bool(params.get("enableECSManagedTags", False)),
        "propagateTags": params.get("propagateTags", "NONE"),
        "enableExecuteCommand": bool(params.get("enableExecuteCommand", False)),
        "tags": check_tags(params.get("tags")),
        "_clientToken": token,
        "_region": region,
        "_launchFailures": 0,
        "_backoffUntil": 0.0,
        "_lastCompletedTaskDefinition": None,
    }
    if params.get("networkConfiguration"):
        body["networkConfiguration"] = params["networkConfiguration"]
    with plane.store.transaction():
        plane.store.put_service(region, body)
    plane.changed("services")
    if plane.preflight is not None:
        plane.preflight(arn)
    return {"service": render(plane, body)}


def update_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():  # what it reads, too: replicas' writes to the service serialise
        return _update_service(plane, region, params)


def _update_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require_service(plane, region, params.get("cluster"), params.get("service"))
    if body["status"] != "ACTIVE":
        raise NotFoundError("Service was not ACTIVE.", "ServiceNotActiveException")
    refuse_capacity_provider_strategy(params)
    changed_td = None
    if params.get("taskDefinition") is not None:
        td = task_definitions.resolve(plane, region, params["taskDefinition"], "TaskDefinition not found.")
        if td["status"] != "ACTIVE":
            raise ClientException("TaskDefinition is inactive")
        task_definitions.check_runnable(plane, task_definitions.public(td))
        check_load_balancers(plane, region, params.get("loadBalancers") or body["loadBalancers"], td)
        if td["taskDefinitionArn"] != body["taskDefinition"]:
            changed_td = td["taskDefinitionArn"]
    if params.get("loadBalancers") is not None:
        td = task_definitions.resolve(plane, region, changed_td or body["taskDefinition"], "TaskDefinition not found.")
        body["loadBalancers"] = check_load_balancers(plane, region, params["loadBalancers"], td)
    if params.get("desiredCount") is not None:
        _check_count(params["desiredCount"])
        body["desiredCount"] = params["desiredCount"]
    if params.get("deploymentConfiguration") is not None:
        body["deploymentConfiguration"] = _deployment_configuration(
            params["deploymentConfiguration"], body["deploymentConfiguration"]
        )
    if params.get("healthCheckGracePeriodSeconds") is not None:
        body["healthCheckGracePeriodSeconds"] = _grace(params["healthCheckGracePeriodSeconds"])
    for key in ("placementConstraints", "placementStrategy"):
        if params.get(key) is not None:
            body[key] = list(params[key])
    if params.get("enableExecuteCommand") is not None:  # for the tasks it starts from now on, as on ECS
        body["enableExecuteCommand"] = bool(params["enableExecuteCommand"])
    if params.get("propagateTags") is not None:  # for the tasks it starts from now on, as on ECS
        body["propagateTags"] = params["propagateTags"]
    if params.get("enableECSManagedTags") is not None:
        body["enableECSManagedTags"] = bool(params["enableECSManagedTags"])
    if changed_td or params.get("forceNewDeployment"):
        td_arn = changed_td or body["taskDefinition"]
        for deployment in body["deployments"]:
            if deployment["status"] == "PRIMARY":
                deployment["status"] = "ACTIVE"
        body["deployments"].insert(0, new_deployment(plane, td_arn, body["desiredCount"], body["launchType"]))
        body["taskDefinition"] = td_arn
        body["_launchFailures"] = 0
        body["_backoffUntil"] = 0.0
    for deployment in body["deployments"]:
        if deployment["status"] == "PRIMARY":
            deployment["desiredCount"] = body["desiredCount"]
            deployment["updatedAt"] = plane.clock()
    with plane.store.transaction():
        plane.store.put_service(region, body)
    plane.changed("services")
    if plane.preflight is not None and (params.get("desiredCount") is not None or changed_td):
        plane.preflight(body["serviceArn"])
    return {"service": render(plane, body)}


def delete_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():  # what it reads, too: replicas' writes to the service serialise
        return _delete_service(plane, region, params)


def _delete_service(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require_service(plane, region, params.get("cluster"), params.get("service"))
    if body["status"] == "INACTIVE":
        raise NotFoundError("Service was not ACTIVE.", "ServiceNotActiveException")
    if body["desiredCount"] > 0 and not params.get("force"):
        raise InvalidParameterException("The service cannot be stopped while it is scaled above 0.")
    body["desiredCount"] = 0
    body["status"] = "DRAINING"
    for deployment in body["deployments"]:
        deployment["desiredCount"] = 0
    with plane.store.transaction():
        plane.store.put_service(region, body)
    plane.changed("services")
    return {"service": render(plane, body)}


def describe_services(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    references = params.get("services") or []
    cluster = plane.require_cluster(region, _cluster_of(params.get("cluster"), references))
    if not references:
        raise InvalidParameterException("services can not be empty.")
    if len(references) > MAX_DESCRIBE_SERVICES:
        raise InvalidParameterException(f"services can have at most {MAX_DESCRIBE_SERVICES} items.")
    found, failures = [], []
    include_tags = "TAGS" in (params.get("include") or [])
    for reference in references:
        arn = _arn(plane, region, cluster["clusterName"], reference)
        body = plane.store.get_service(arn)
        if body is None:
            # As ECS reports it: the ARN given, or for a name the short service ARN (no cluster in it).
            shown = reference if reference.startswith("arn:") else arns.ecs_arn(region, plane.account, f"service/{reference}")
            failures.append({"arn": shown, "reason": "MISSING"})
            continue
        rendered = render(plane, body)
        if not include_tags:
            rendered.pop("tags", None)
        found.append(rendered)
    return {"services": found, "failures": failures}


def list_services(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    bodies = [
        b for b in plane.store.list_services(region, cluster["clusterName"])
        if b["status"] != "INACTIVE"
        and params.get("launchType") in (None, b["launchType"])
        and params.get("schedulingStrategy") in (None, b["schedulingStrategy"])
    ]
    page, token = paginate([b["serviceArn"] for b in bodies], params, limit=100, default=10)
    out: dict[str, Any] = {"serviceArns": page}
    if token:
        out["nextToken"] = token
    return out


# -- helpers


def require_service(plane: ControlPlane, region: str, cluster: str | None, reference: Any) -> dict[str, Any]:
    """The service named, ClusterNotFoundException first (its cluster: ``cluster``, else the one a long
    service ARN names, else ``default``), then ServiceNotFoundException, as ECS orders them."""
    cluster_body = plane.require_cluster(region, _cluster_of(cluster, [reference]))
    if not isinstance(reference, str) or not reference:
        raise InvalidParameterException("service can not be blank.")
    body = plane.store.get_service(_arn(plane, region, cluster_body["clusterName"], reference))
    if body is None:
        raise NotFoundError("Service not found.", "ServiceNotFoundException")
    return body


def render(plane: ControlPlane, body: dict[str, Any], live: list[Task] | None = None) -> dict[str, Any]:
    """The API shape: internal fields dropped, task counts computed from live tasks (``live``: the
    cluster's live tasks when the caller has read them already)."""
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    group = f"service:{body['serviceName']}"
    cluster = body["clusterArn"].rsplit("/", 1)[-1]
    counts: dict[str, list[int]] = {d["id"]: [0, 0] for d in body["deployments"]}
    running = pending = 0
    for task in plane.live_tasks(body["_region"], cluster) if live is None else live:
        if task.group != group or task.desired_status != "RUNNING":
            continue
        is_running = task.last_status.name == "RUNNING"
        running += is_running
        pending += not is_running
        if task.started_by in counts:
            counts[task.started_by][0 if is_running else 1] += 1
    out["runningCount"], out["pendingCount"] = running, pending
    out["deployments"] = []
    for deployment in body["deployments"]:
        shown = {k: v for k, v in deployment.items() if not k.startswith("_")}
        shown["runningCount"], shown["pendingCount"] = counts.get(deployment["id"], [0, 0])
        out["deployments"].append(shown)
    return out


def check_load_balancers(plane: ControlPlane, region: str, items: list[dict[str, Any]], td: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate a service's loadBalancers against the target groups and the task definition."""
    from portside.control.elbv2.common import get as elb_get
    from portside.control.elbv2.target_groups import usage

    if len(items) > MAX_LOAD_BALANCERS:
        raise InvalidParameterException(f"loadBalancers can have at most {MAX_LOAD_BALANCERS} items.")
    containers = {c["name"]: c for c in td["containerDefinitions"]}
    mode = td.get("networkMode", "bridge")
    used = usage(plane, region)
    out = []
    for i, item in enumerate(items):
        tg_arn = item.get("targetGroupArn")
        if not tg_arn:
            raise InvalidParameterException(f"loadBalancers[{i}].targetGroupArn is required (classic load balancers are not supported).")
        tg = elb_get(plane, region, "targetgroup", tg_arn)
        if tg is None:
            raise InvalidParameterException(f"Unable to find target group '{tg_arn}'.")
        if not used.get(tg_arn):
            raise InvalidParameterException(f"The target group with targetGroupArn {tg_arn} does not have an associated load balancer.")
        expected = "ip" if mode == "awsvpc" else "instance"
        if tg.get("TargetType") != expected:
            raise InvalidParameterException(
                f"The provided target group {tg_arn} has target type {tg.get('TargetType')}, which is incompatible with the "
                f"{mode} network mode specified in the task definition."
            )
        name, port = item.get("containerName"), item.get("containerPort")
        container = containers.get(name)
        if container is None:
            raise InvalidParameterException(f"The container {name} does not exist in the task definition.")
        if not any(m.get("containerPort") == port for m in container.get("portMappings") or []):
            raise InvalidParameterException(f"The container {name} did not have a container port {port} defined.")
        out.append({"targetGroupArn": tg_arn, "containerName": name, "containerPort": port})
    return out


def _cluster_of(cluster: str | None, references: list[Any]) -> str | None:
    """``cluster`` when given; else the cluster of the first long service ARN among ``references``."""
    if cluster:
        return cluster
    for reference in references:
        parts = arns.split_arn(reference) if isinstance(reference, str) else None
        if parts and parts["resource"].count("/") == 2 and parts["resource"].startswith("service/"):
            return parts["resource"].split("/")[1]
    return None


def _arn(plane: ControlPlane, region: str, cluster: str, reference: str) -> str:
    return reference if reference.startswith("arn:") else service_arn(plane, region, cluster, reference)


def _check_count(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidParameterException("desiredCount must be a non-negative integer.")


def _grace(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2147483647:
        raise InvalidParameterException("healthCheckGracePeriodSeconds must be an integer from 0 to 2147483647.")
    return value


def _deployment_configuration(given: dict[str, Any] | None, current: dict[str, Any] | None) -> dict[str, Any]:
    config = {**DEFAULT_DEPLOYMENT_CONFIGURATION, **(current or {}), **(given or {})}
    breaker = config.get("deploymentCircuitBreaker") or {}
    config["deploymentCircuitBreaker"] = {"enable": bool(breaker.get("enable")), "rollback": bool(breaker.get("rollback"))}
    low, high = config["minimumHealthyPercent"], config["maximumPercent"]
    if not isinstance(low, int) or not 0 <= low <= 100:
        raise InvalidParameterException("deploymentConfiguration.minimumHealthyPercent must be between 0 and 100.")
    if not isinstance(high, int) or high < 100:
        raise InvalidParameterException("deploymentConfiguration.maximumPercent must be at least 100.")
    return config
