"""Clusters and container instances (this host registers itself as one at start)."""

from __future__ import annotations

from typing import Any

from portside import __version__
from portside.agent import host
from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.attributes import keep_custom
from portside.errors import ClientException, NotFoundError


def ensure_cluster(plane: ControlPlane, region: str, name: str, tags: list[Any] | None = None) -> dict[str, Any]:
    existing = plane.store.get_cluster(region, name)
    if existing is not None and existing["status"] == "ACTIVE":
        return existing
    body = {
        "clusterArn": plane.cluster_arn(region, name),
        "clusterName": name,
        "status": "ACTIVE",
        "tags": list(tags or []),
        "settings": [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    }
    plane.store.put_cluster(region, body)
    return body


def register_local_instance(
    plane: ControlPlane, docker_version: str, cpu_units: int, memory_mib: int
) -> dict[str, Any]:
    """(Re-)register this host in the configured cluster of the configured region, same ARN every time."""
    region = plane.config.region
    cluster = plane.config.extra.get("cluster", "default")
    ensure_cluster(plane, region, cluster)
    config = plane.config
    reserved_tcp = sorted({*config.reserved_ports_tcp, *plane.own_ports})
    body = {
        "containerInstanceArn": plane.instance_arn,
        "ec2InstanceId": host.host_instance_id(),
        "version": 1,
        "versionInfo": {
            "agentVersion": f"portside-{__version__}",
            "agentHash": "portside",
            "dockerVersion": f"DockerVersion: {docker_version}",
        },
        "registeredResources": [
            _int_resource("CPU", cpu_units),
            _int_resource("MEMORY", max(memory_mib - config.reserved_memory_mib, 0)),
            _set_resource("PORTS", [str(p) for p in reserved_tcp]),
            _set_resource("PORTS_UDP", [str(p) for p in sorted(config.reserved_ports_udp)]),
        ],
        "status": "ACTIVE",
        "agentConnected": True,
        "attributes": _attributes(region),
        "registeredAt": plane.clock(),
        "tags": [],
    }
    with plane.store.transaction():
        previous = [i for i in plane.store.list_container_instances(region, cluster) if i["containerInstanceArn"] == plane.instance_arn]
        if previous:
            body["registeredAt"] = previous[0]["registeredAt"]
            body["version"] = previous[0].get("version", 1) + 1
            body["attributes"] = keep_custom(body["attributes"], previous[0].get("attributes", []))
        plane.store.put_container_instance(region, cluster, body)
    return body


def describe_instance(plane: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    """The instance with remainingResources and task counts computed from live tasks."""
    cpu_used, memory_used, tcp, udp = plane.agent.used_resources(body["containerInstanceArn"])
    registered = {r["name"]: r for r in body["registeredResources"]}
    running = pending = 0
    for task in plane.agent.tasks.values():
        if task.container_instance_arn == body["containerInstanceArn"] and task.desired_status == "RUNNING":
            if task.last_status.name == "RUNNING":
                running += 1
            elif task.last_status.name in ("PROVISIONING", "PENDING", "ACTIVATING"):
                pending += 1
    out = dict(body)
    out["remainingResources"] = [
        _int_resource("CPU", registered["CPU"]["integerValue"] - cpu_used),
        _int_resource("MEMORY", registered["MEMORY"]["integerValue"] - memory_used),
        _set_resource("PORTS", sorted(set(registered["PORTS"]["stringSetValue"]) | tcp, key=int)),
        _set_resource("PORTS_UDP", sorted(set(registered["PORTS_UDP"]["stringSetValue"]) | udp, key=int)),
    ]
    out["runningTasksCount"] = running
    out["pendingTasksCount"] = pending
    return out


# -- API operations


def create_cluster(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("clusterName") or "default"
    if not isinstance(name, str) or len(name) > 255 or not all(ch.isalnum() or ch in "-_" for ch in name):
        raise ClientException(
            "Cluster name can have up to 255 characters: letters (uppercase and lowercase), numbers, "
            "underscores and hyphens."
        )
    with plane.store.transaction():
        body = ensure_cluster(plane, region, name, params.get("tags"))
    return {"cluster": render_cluster(plane, region, body, include=("TAGS", "SETTINGS"))}


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
        if plane.store.list_container_instances(region, name):
            raise NotFoundError(
                "The Cluster cannot be deleted while Container Instances are active or draining.",
                "ClusterContainsContainerInstancesException",
            )
        if any(b["status"] != "INACTIVE" for b in plane.store.list_services(region, name)):
            raise NotFoundError(
                "The Cluster cannot be deleted while Services are active.", "ClusterContainsServicesException"
            )
        if any(t.region == region and t.cluster == name for t in plane.agent.tasks.values()):
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
    arns_ = [i["containerInstanceArn"] for i in instances if status in (None, i["status"])]
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
            found.append(describe_instance(plane, body))
    return {"containerInstances": found, "failures": failures}


def render_cluster(plane: ControlPlane, region: str, body: dict[str, Any], include: tuple[str, ...]) -> dict[str, Any]:
    name = body["clusterName"]
    live = [t for t in plane.agent.tasks.values() if t.region == region and t.cluster == name]
    out = {k: v for k, v in body.items() if k not in ("tags", "settings")}
    out.update(
        {
            "registeredContainerInstancesCount": len(plane.store.list_container_instances(region, name))
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
    return out


def _as_cluster_arn(plane: ControlPlane, region: str, reference: str) -> str:
    return reference if reference.startswith("arn:") else plane.cluster_arn(region, reference)


def _int_resource(name: str, value: int) -> dict[str, Any]:
    return {"name": name, "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": value}


def _set_resource(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0, "stringSetValue": values}


def _attributes(region: str) -> list[dict[str, str]]:
    names = {
        "ecs.os-type": "linux",
        "ecs.os-family": "LINUX",
        "ecs.cpu-architecture": host.cpu_architecture(),
        "ecs.availability-zone": f"{region}a",
        "ecs.instance-type": "portside.local",
        "ecs.ami-id": "ami-portside",
    }
    capabilities = [
        "com.amazonaws.ecs.capability.docker-remote-api.1.17",
        "com.amazonaws.ecs.capability.docker-remote-api.1.18",
        "com.amazonaws.ecs.capability.docker-remote-api.1.19",
        "com.amazonaws.ecs.capability.docker-remote-api.1.21",
        "com.amazonaws.ecs.capability.container-health-check",
        "ecs.capability.container-ordering",
        "ecs.capability.task-eni",
        "ecs.capability.container-port-range",
    ]
    out = [{"name": k, "value": v} for k, v in names.items()]
    out.extend({"name": c} for c in capabilities)
    return out
