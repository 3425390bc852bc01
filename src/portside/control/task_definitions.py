"""RegisterTaskDefinition, DescribeTaskDefinition, List*, DeregisterTaskDefinition."""

from __future__ import annotations

import os
from typing import Any

from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import arns
from portside.core.tags import check_tags
from portside.core.task_allowances import check_allowed
from portside.core.taskdef import validate_registration
from portside.core.taskdef_support import check_supported
from portside.errors import ClientException

TAGS_KEY = "__tags"
MAX_DELETE = 10


def register(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    content = validate_registration(params)
    tags = check_tags(params.get("tags"))
    family = content["family"]
    with plane.store.transaction():
        revision = plane.store.latest_revision(region, family) + 1
        body = dict(content)
        body.update(
            {
                "taskDefinitionArn": arns.task_definition_arn(region, plane.account, family, revision),
                "revision": revision,
                "status": "ACTIVE",
                "requiresAttributes": _required_attributes(content),
                "compatibilities": _compatibilities(content),
                "registeredAt": plane.clock(),
                "registeredBy": f"arn:aws:iam::{plane.account}:root",
                TAGS_KEY: tags,
            }
        )
        plane.store.put_task_definition(region, body)
    return {"taskDefinition": public(body), "tags": tags}


def check_runnable(plane: ControlPlane, content: dict[str, Any]) -> None:
    """Refuse (InvalidParameterException) a task definition this server would not run as defined.

    Registration accepts it, as ECS does; RunTask, CreateService, UpdateService and every launch
    of a service's copies call this. First the fields portside cannot apply
    (core/taskdef_support.py), then the fields that hand a task the host unless a server flag
    allows them (core/task_allowances.py).
    """
    check_supported(content)
    check_allowed(content, plane.config.allowances, _real_host_paths(content))


def _real_host_paths(content: dict[str, Any]) -> dict[str, str]:
    """Where each host ``sourcePath`` leads on this host, symbolic links followed as Docker will."""
    sources = [(v.get("host") or {}).get("sourcePath") for v in content.get("volumes") or []]
    return {s: os.path.realpath(s) for s in sources if isinstance(s, str) and s.startswith("/")}


def describe(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = resolve(plane, region, params.get("taskDefinition"), "Unable to describe task definition.")
    out: dict[str, Any] = {"taskDefinition": public(body)}
    if "TAGS" in (params.get("include") or []):
        out["tags"] = body.get(TAGS_KEY, [])
    return out


def deregister(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    reference = params.get("taskDefinition") or ""
    family, _, revision = arns.last_segment(reference).partition(":")
    if not revision:
        raise ClientException("The specified task definition identifier is invalid. Specify a valid revision.")
    with plane.store.transaction():
        body = resolve(plane, region, reference, "The specified task definition does not exist.")
        if body["status"] == "ACTIVE":
            body["status"] = "INACTIVE"
            body["deregisteredAt"] = plane.clock()
            plane.store.put_task_definition(region, body)
    return {"taskDefinition": public(body)}


def delete_definitions(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """Move INACTIVE revisions to DELETE_IN_PROGRESS; any other is a failure, as ECS lists them.

    ECS removes a DELETE_IN_PROGRESS revision once no task or service uses it; portside keeps it in
    that state (DescribeTaskDefinition still answers it; nothing new can run it).
    """
    references = params.get("taskDefinitions") or []
    if not references or len(references) > MAX_DELETE:
        raise ClientException(f"taskDefinitions must have 1 to {MAX_DELETE} items.")
    deleted, failures = [], []
    with plane.store.transaction():
        for reference in references:
            arn = _as_arn(plane, region, reference)
            if ":" not in arns.last_segment(str(reference)):
                failures.append({"arn": arn, "reason": "INVALID", "detail": "Specify a revision: family:revision or a task definition ARN."})
                continue
            try:
                body = resolve(plane, region, reference, "The specified task definition does not exist.")
            except ClientException as exc:
                failures.append({"arn": arn, "reason": "MISSING", "detail": exc.message})
                continue
            if body["status"] == "ACTIVE":
                failures.append({
                    "arn": body["taskDefinitionArn"], "reason": "TASK_DEFINITION_NOT_INACTIVE",
                    "detail": "The task definition is ACTIVE: deregister it (DeregisterTaskDefinition) before you delete it.",
                })
                continue
            if body["status"] == "INACTIVE":
                body["status"] = "DELETE_IN_PROGRESS"
                plane.store.put_task_definition(region, body)
            deleted.append(public(body))
    return {"taskDefinitions": deleted, "failures": failures}


def _as_arn(plane: ControlPlane, region: str, reference: Any) -> str:
    if isinstance(reference, str) and reference.startswith("arn:"):
        return reference
    family, _, revision = str(reference).partition(":")
    return arns.ecs_arn(region, plane.account, f"task-definition/{family}:{revision}" if revision else f"task-definition/{family}")


def list_definitions(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    status = params.get("status") or "ACTIVE"
    descending = params.get("sort") == "DESC"
    arns_ = plane.store.list_task_definitions(region, params.get("familyPrefix"), status, descending)
    page, token = paginate(arns_, params)
    return _with_token({"taskDefinitionArns": page}, token)


def list_families(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    families = plane.store.list_families(region, params.get("familyPrefix"), params.get("status") or "ACTIVE")
    page, token = paginate(families, params)
    return _with_token({"families": page}, token)


def resolve(plane: ControlPlane, region: str, reference: Any, missing: str) -> dict[str, Any]:
    """The stored body for ``family``, ``family:revision`` or a task definition ARN."""
    if not isinstance(reference, str) or not reference:
        raise ClientException("taskDefinition must be a family, family:revision or task definition ARN.")
    if reference.startswith("arn:"):
        parts = arns.split_arn(reference)
        if not parts or not parts["resource"].startswith("task-definition/"):
            raise ClientException(f"Invalid task definition ARN: {reference}")
        if parts["region"] and parts["region"] != region:
            raise ClientException(missing)
        reference = parts["resource"][len("task-definition/") :]
    family, _, revision_text = reference.partition(":")
    revision: int | None = None
    if revision_text:
        if not revision_text.isdigit():
            raise ClientException(f"Invalid revision number in task definition {reference}.")
        revision = int(revision_text)
    body = plane.store.get_task_definition(region, family, revision)
    if body is None:
        raise ClientException(missing)
    return body


def public(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != TAGS_KEY}


def _with_token(out: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        out["nextToken"] = token
    return out


def _compatibilities(content: dict[str, Any]) -> list[str]:
    compat = ["EC2"]
    if content.get("networkMode") == "awsvpc" and content.get("cpu") and content.get("memory"):
        compat.append("FARGATE")
    return compat


def _required_attributes(content: dict[str, Any]) -> list[dict[str, str]]:
    names = {"com.amazonaws.ecs.capability.docker-remote-api.1.18"}
    containers = content.get("containerDefinitions", [])
    if any(c.get("healthCheck") for c in containers):
        names.add("com.amazonaws.ecs.capability.container-health-check")
    if any(c.get("dependsOn") for c in containers):
        names.add("ecs.capability.container-ordering")
    if content.get("networkMode") == "awsvpc":
        names.add("ecs.capability.task-eni")
    if any(m.get("containerPortRange") for c in containers for m in c.get("portMappings") or []):
        names.add("ecs.capability.container-port-range")
    return [{"name": n} for n in sorted(names)]
