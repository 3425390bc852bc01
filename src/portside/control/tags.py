"""TagResource, UntagResource and ListTagsForResource on clusters, services, tasks, task definitions
and container instances; the tags a new task is given (propagateTags, enableECSManagedTags).

Each resource keeps its tags in its own stored record (a cluster's, a service's, a task's ``tags``;
a task definition's under ``task_definitions.TAGS_KEY``), so deleting the resource deletes them.
The rules are in core/tags.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from portside.control import task_definitions
from portside.control.plane import ControlPlane
from portside.control.store.database import StaleWrite
from portside.core import arns
from portside.core.tags import check_keys, check_tags, merged, task_tags, without
from portside.errors import InvalidParameterException, NotFoundError

#: A service's record is also written by its controller: a tag write that finds it changed tries again.
SERVICE_WRITE_TRIES = 5
_KINDS = ("cluster", "service", "task", "task-definition", "container-instance")


def tag_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    given = check_tags(params.get("tags"))
    _change(plane, region, params.get("resourceArn"), lambda tags: merged(tags, given))
    return {}


def untag_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    keys = check_keys(params.get("tagKeys"))
    _change(plane, region, params.get("resourceArn"), lambda tags: without(tags, keys))
    return {}


def list_tags_for_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    kind, resource = _parse(params.get("resourceArn"), region, plane.account)
    tags, _write = _locate(plane, region, kind, resource, params["resourceArn"])
    return {"tags": tags}


def new_task_tags(
    plane: ControlPlane,
    region: str,
    cluster: dict[str, Any],
    td: dict[str, Any],
    params: dict[str, Any],
    service: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """The tags of a task RunTask (``params``) or a service (``service``) starts."""
    source = service if service is not None else params
    propagate = source.get("propagateTags") or "NONE"
    if service is None and propagate == "SERVICE":
        raise InvalidParameterException(
            "propagateTags: SERVICE is valid only for tasks a service starts; RunTask can propagate TASK_DEFINITION or NONE."
        )
    managed: dict[str, str] = {}
    if source.get("enableECSManagedTags"):
        managed["aws:ecs:clusterName"] = cluster["clusterName"]
        if service is not None:
            managed["aws:ecs:serviceName"] = service["serviceName"]
    own = check_tags(params.get("tags")) if service is None else []
    return task_tags(
        own, propagate, td.get(task_definitions.TAGS_KEY, []), (service or {}).get("tags"), managed
    )


# -- finding the resource an ARN names


def _parse(arn: Any, region: str, account: str) -> tuple[str, str]:
    if not isinstance(arn, str) or not arn:
        raise InvalidParameterException("resourceArn can not be blank.")
    parts = arns.split_arn(arn)
    if parts is None or parts["service"] != "ecs":
        raise InvalidParameterException(f"resourceArn '{arn}' is not an ECS resource ARN.")
    kind, _, resource = parts["resource"].partition("/")
    if kind not in _KINDS or not resource:
        raise InvalidParameterException(
            f"resourceArn '{arn}': only clusters, services, tasks, task definitions and container instances carry tags."
        )
    if kind == "service" and "/" not in resource:
        raise InvalidParameterException(
            f"resourceArn '{arn}' is a short service ARN; tag the service by its long ARN (service/CLUSTER/NAME)."
        )
    if parts["region"] != region or parts["account"] != account:
        _missing()
    return kind, resource


def _locate(
    plane: ControlPlane, region: str, kind: str, resource: str, arn: str
) -> tuple[list[dict[str, str]], Callable[[list[dict[str, str]]], None]]:
    """The resource's tags, and how to write new ones (inside the caller's transaction)."""
    store = plane.store
    if kind == "task-definition":
        family, _, revision = resource.partition(":")
        body = store.get_task_definition(region, family, int(revision)) if revision.isdigit() else None
        if body is None:
            _missing()

        def write_td(tags: list[dict[str, str]]) -> None:
            body[task_definitions.TAGS_KEY] = tags
            store.put_task_definition(region, body)

        return list(body.get(task_definitions.TAGS_KEY, [])), write_td
    if kind == "cluster":
        cluster = store.get_cluster(region, resource)
        if cluster is None or cluster["status"] != "ACTIVE":
            raise NotFoundError("Cluster not found.", "ClusterNotFoundException")

        def write_cluster(tags: list[dict[str, str]]) -> None:
            cluster["tags"] = tags
            store.put_cluster(region, cluster)

        return list(cluster.get("tags", [])), write_cluster
    cluster_name = resource.split("/", 1)[0]
    plane.require_cluster(region, cluster_name)  # ClusterNotFoundException first, as ECS answers
    if kind == "service":
        service = store.get_service(arn)
        if service is None or service["status"] == "INACTIVE":
            _missing()

        def write_service(tags: list[dict[str, str]]) -> None:
            service["tags"] = tags
            store.put_service(region, service)

        return list(service.get("tags", [])), write_service
    if kind == "task":
        task = store.get_task(arn)
        if task is None or task.region != region:
            _missing()

        def write_task(tags: list[dict[str, str]]) -> None:
            task.tags = tags
            store.put_task(task, assigned=False)  # a report-like write: no agent need hear of it

        return list(task.tags), write_task
    instance = store.get_container_instance(arn)
    if instance is None:
        _missing()

    def write_instance(tags: list[dict[str, str]]) -> None:
        instance["tags"] = tags
        store.put_container_instance(region, cluster_name, instance)

    return list(instance.get("tags", [])), write_instance


def _change(
    plane: ControlPlane, region: str, arn: Any, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]
) -> None:
    kind, resource = _parse(arn, region, plane.account)
    for attempt in range(SERVICE_WRITE_TRIES):
        try:
            with plane.store.transaction():
                tags, write = _locate(plane, region, kind, resource, arn)
                write(change(tags))
            return
        except StaleWrite:
            if attempt == SERVICE_WRITE_TRIES - 1:
                raise


def _missing() -> NoReturn:
    raise NotFoundError("The specified resource could not be found.", "ResourceNotFoundException")
