"""Clusters and container instances (agents register their hosts: control/agent_protocol.py)."""

from __future__ import annotations

from typing import Any

from portside.control.account_settings import new_cluster_settings
from portside.control.cluster_settings import cluster_options
from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.tags import check_tags
from portside.core.task import Task
from portside.errors import ClientException, NotFoundError


def ensure_cluster(
    plane: ControlPlane, region: str, name: str, tags: list[Any] | None = None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ACTIVE cluster ``name``, created with ``tags`` and ``options`` (control/cluster_settings.py)
    unless it exists already (then it is answered as it is, as ECS answers CreateCluster)."""
    existing = plane.store.get_cluster(region, name)
    if existing is not None and existing["status"] == "ACTIVE":
        return existing
    body = {
        "clusterArn": plane.cluster_arn(region, name),
        "clusterName": name,
        "status": "ACTIVE",
        "tags": list(tags or []),
        "settings": new_cluster_settings(plane, region),
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
        **(options or {}),
    }
    plane.store.put_cluster(region, body)
    return body


def describe_instance(plane: ControlPlane, body: dict[str, Any], tasks: list[Task] | None = None) -> dict[str, Any]:
    """The instance as ECS shows it: remainingResources, task counts and agentConnected from live tasks
    (``tasks``: the instance's live tasks when the caller has read them already)."""
    arn = body["containerInstanceArn"]
    tasks = plane.store.live_tasks_on(arn) if tasks is None else tasks
    cpu_used, memory_used, tcp, udp = used_resources(tasks)
    registered = {r["name"]: r for r in body["registeredResources"]}
    running = pending = 0
    for task in tasks:
        if task.desired_status == "RUNNING":
            if task.last_status.name == "RUNNING":
                running += 1
            elif task.last_status.name in ("PROVISIONING", "PENDING", "ACTIVATING"):
                pending += 1
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    out["agentConnected"] = plane.agent_connected(arn)
    out["remainingResources"] = [
        int_resource("CPU", registered["CPU"]["integerValue"] - cpu_used),
        int_resource("MEMORY", registered["MEMORY"]["integerValue"] - memory_used),
        set_resource("PORTS", sorted(set(registered["PORTS"]["stringSetValue"]) | tcp, key=int)),
        set_resource("PORTS_UDP", sorted(set(registered["PORTS_UDP"]["stringSetValue"]) | udp, key=int)),
    ]
    out["runningTasksCount"] = running
    out["pendingTasksCount"] = pending
    return out


def used_resources(tasks: list[Task]) -> tuple[int, int, set[str], set[str]]:
    """CPU, memory and static TCP/UDP host ports that live tasks on one instance reserve."""
    cpu = memory = 0
    tcp: set[str] = set()
    udp: set[str] = set()
    for task in tasks:
        cpu += task.cpu
        memory += task.memory
        if task.network_mode == "awsvpc":
            continue
        for container in task.containers:
            for plan in container.ports:
                if not plan.dynamic and plan.host_port:
                    (udp if plan.protocol == "udp" else tcp).add(str(plan.host_port))
    return cpu, memory, tcp, udp


# -- API operations


def create_cluster(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("clusterName") or "default"
    if not isinstance(name, str) or len(name) > 255 or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ClientException(
            "Cluster name can have up to 255 characters: letters (uppercase and lowercase), numbers, "
            "underscores and hyphens."
        )
    tags, options = check_tags(params.get("tags")), cluster_options(params)
    with plane.store.transaction():
        body = ensure_cluster(plane, region, name, tags, options)
    return {"cluster": render_cluster(plane, region, body, include=("TAGS", "SETTINGS", "CONFIGURATIONS"))}


def describe_clusters(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    include = tuple(params.get("include") or ())
    clusters, failures = [], []
    for reference in params.get("clusters") or ["default"]:
        body = plane.store.get_cluster(region, arns.cluster_name(reference))
        if body is None:
            failures.append({"arn": _as_cluster_arn(plane, region, reference), "reason": "MISSING"})
        else:
            clusters.append(render_cluster(plane, region, body, include))
    return {"clusters": clusters, "failures": failures}


def list_clusters(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    all_arns = [c["clusterArn"] for c in plane.store.list_clusters(region)]
    page, token = paginate(all_arns, params)
    out: dict[str, Any] = {"clusterArns": page}
    if token:
        out["nextToken"] = token
    return out


def delete_cluster(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        body = plane.require_cluster(region, params.get("cluster"))
        name = body["clusterName"]
        if any(i["status"] != "INACTIVE" for i in plane.store.list_container_instances(region, name)):
            raise NotFoundError(
                "The Cluster cannot be deleted while Container Instances are active or draining.",
                "ClusterContainsContainerInstancesException",
            )
        if any(b["status"] != "INACTIVE" for b in plane.store.list_services(region, name)):
            raise NotFoundError(
                "The Cluster cannot be deleted while Services are active.", "ClusterContainsServicesException"
            )
        if plane.live_tasks(region, name):
            raise NotFoundError(
                "The Cluster cannot be deleted while Tasks are active.", "ClusterContainsTasksException"
            )
        body["status"] = "INACTIVE"
        plane.store.put_cluster(region, body)
    return {"cluster": render_cluster(plane, region, body, include=())}


def list_container_instances(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    instances = plane.store.list_container_instances(region, cluster["clusterName"])
    status = params.get("status")
    # Without a filter: ACTIVE and DRAINING ones, not those deregistered (INACTIVE), as ECS lists them.
    arns_ = [i["containerInstanceArn"] for i in instances if status == i["status"] or (status is None and i["status"] != "INACTIVE")]
    page, token = paginate(arns_, params)
    out: dict[str, Any] = {"containerInstanceArns": page}
    if token:
        out["nextToken"] = token
    return out


def describe_container_instances(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    cluster = plane.require_cluster(region, params.get("cluster"))
    references = params.get("containerInstances") or []
    if not references:
        raise ClientException("containerInstances can not be empty.")
    if len(references) > 100:
        raise ClientException("containerInstances can have at most 100 items.")
    known = {i["containerInstanceArn"]: i for i in plane.store.list_container_instances(region, cluster["clusterName"])}
    by_id = {arn.rsplit("/", 1)[-1]: body for arn, body in known.items()}
    found, failures = [], []
    for reference in references:
        body = known.get(reference) or by_id.get(reference)
        if body is None:
            arn = reference if reference.startswith("arn:") else arns.container_instance_arn(
                region, plane.account, cluster["clusterName"], reference
            )
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            shown = describe_instance(plane, body)
            if "TAGS" not in (params.get("include") or []):
                shown.pop("tags", None)
            found.append(shown)
    return {"containerInstances": found, "failures": failures}


def render_cluster(plane: ControlPlane, region: str, body: dict[str, Any], include: tuple[str, ...]) -> dict[str, Any]:
    name = body["clusterName"]
    live = plane.live_tasks(region, name)
    out = {k: v for k, v in body.items() if k not in ("tags", "settings", "configuration")}
    out.update(
        {
            "registeredContainerInstancesCount": sum(
                1 for i in plane.store.list_container_instances(region, name) if i["status"] != "INACTIVE"
            )
            if body["status"] == "ACTIVE"
            else 0,
            "runningTasksCount": sum(1 for t in live if t.last_status.name == "RUNNING"),
            "pendingTasksCount": sum(1 for t in live if t.last_status.name in ("PROVISIONING", "PENDING", "ACTIVATING")),
            "activeServicesCount": sum(1 for b in plane.store.list_services(region, name) if b["status"] == "ACTIVE"),
            "statistics": [],
        }
    )
    if "TAGS" in include:
        out["tags"] = body.get("tags", [])
    if "SETTINGS" in include:
        out["settings"] = body.get("settings", [])
    if "CONFIGURATIONS" in include and body.get("configuration"):
        out["configuration"] = body["configuration"]
    return out


def _as_cluster_arn(plane: ControlPlane, region: str, reference: str) -> str:
    return reference if reference.startswith("arn:") else plane.cluster_arn(region, reference)


def int_resource(name: str, value: int) -> dict[str, Any]:
    return {"name": name, "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": value}


def set_resource(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0, "stringSetValue": values}
