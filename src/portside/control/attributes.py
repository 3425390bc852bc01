"""PutAttributes, DeleteAttributes and ListAttributes: custom attributes on container instances.

The rules are :mod:`portside.core.attributes`; this module loads the cluster's instances, asks
the core for their new attribute lists and stores them in one transaction. Every item is
checked, and every target found, before the first write: a request changes all it asked for or
nothing. A change wakes the controllers, so a service waiting for an instance that satisfies its
``memberOf`` constraint places at once.
"""

from __future__ import annotations

from typing import Any

from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core import attributes
from portside.errors import InvalidParameterException


def put_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    items = attributes.parse_items(params.get("attributes"), deleting=False)
    with plane.store.transaction():
        cluster, bodies = _instances(plane, region, params)
        changes = [(attributes.resolve_target(i, bodies, cluster), i) for i in items]
        updated = attributes.apply_put({arn: b.get("attributes", []) for arn, b in bodies.items()}, changes)
        _store(plane, region, cluster, bodies, updated)
    plane.changed("instances")
    return {"attributes": [attributes.render(arn, _as_attribute(item)) for arn, item in changes]}


def delete_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    items = attributes.parse_items(params.get("attributes"), deleting=True)
    with plane.store.transaction():
        cluster, bodies = _instances(plane, region, params)
        changes = [(attributes.resolve_target(i, bodies, cluster), i) for i in items]
        updated, deleted = attributes.apply_delete(
            {arn: b.get("attributes", []) for arn, b in bodies.items()}, changes
        )
        _store(plane, region, cluster, bodies, updated)
    if updated:
        plane.changed("instances")
    return {"attributes": [attributes.render(arn, a) for arn, a in deleted]}


def list_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    target_type = params.get("targetType")
    if target_type != attributes.TARGET_TYPE:
        raise InvalidParameterException(
            f"targetType {target_type!r} is invalid: the only target type is '{attributes.TARGET_TYPE}'."
        )
    name, value = params.get("attributeName"), params.get("attributeValue")
    attributes.check_list_filter(name, value)
    _cluster, bodies = _instances(plane, region, params)
    found = attributes.list_attributes(
        ((arn, bodies[arn].get("attributes", [])) for arn in sorted(bodies)), name, value
    )
    page, token = paginate(found, params)
    out: dict[str, Any] = {"attributes": page}
    if token:
        out["nextToken"] = token
    return out


def _instances(
    plane: ControlPlane, region: str, params: dict[str, Any]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The request's cluster (ClusterNotFoundException if none) and its instances by ARN."""
    name = plane.require_cluster(region, params.get("cluster"))["clusterName"]
    return name, {b["containerInstanceArn"]: b for b in plane.store.list_container_instances(region, name)}


def _store(
    plane: ControlPlane,
    region: str,
    cluster: str,
    bodies: dict[str, dict[str, Any]],
    updated: dict[str, list[dict[str, str]]],
) -> None:
    for arn, new in updated.items():
        plane.store.put_container_instance(region, cluster, {**bodies[arn], "attributes": new})


def _as_attribute(item: attributes.AttributeItem) -> dict[str, str]:
    return {"name": item.name} if item.value is None else {"name": item.name, "value": item.value}
