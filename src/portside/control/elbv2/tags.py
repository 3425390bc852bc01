"""AddTags, RemoveTags, DescribeTags for load balancers, target groups, listeners and rules.

Tags live in ``elb_tags`` (arn, key, value), in the order they were first added; a later AddTags
of the same key replaces the value in place, as AWS does. A resource's tags are deleted with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portside.control.elbv2.common import arn_kind, fail, require, validation
from portside.control.plane import ControlPlane

MAX_RESOURCE_ARNS = 20
MAX_TAGS_PER_RESOURCE = 50


def check_tags(tags: Any) -> list[dict[str, str]]:
    """Tags of a Create* call or AddTags: DuplicateTagKeys, TooManyTags, reserved ``aws:`` keys."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for tag in tags or []:
        key = tag["Key"]
        if key in seen:
            raise fail("DuplicateTagKeys", f"Tag key '{key}' is duplicated")
        if key.lower().startswith("aws:"):
            raise validation(f"Tag key '{key}' cannot start with 'aws:': that prefix is reserved for AWS use")
        seen.add(key)
        out.append({"Key": key, "Value": tag.get("Value") or ""})
    if len(out) > MAX_TAGS_PER_RESOURCE:
        raise fail("TooManyTags", f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags")
    return out


def get_tags(plane: ControlPlane, arn: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in plane.store.tags_of(arn)]


def put_tags(plane: ControlPlane, region: str, arn: str, tags: Iterable[dict[str, str]]) -> None:
    """Add or replace tags (call inside a transaction)."""
    for tag in tags:
        plane.store.put_tag(region, arn, tag["Key"], tag["Value"])


def delete_tags(plane: ControlPlane, arns: Iterable[str]) -> None:
    """Drop every tag of ``arns`` (call inside a transaction, with the resources)."""
    for arn in arns:
        plane.store.delete_tags_of(arn)


def _resources(plane: ControlPlane, region: str, arns: Any) -> list[str]:
    arns = list(arns or [])
    if not arns:
        raise validation("At least one resource ARN must be specified")
    if len(arns) > MAX_RESOURCE_ARNS:
        raise validation(f"At most {MAX_RESOURCE_ARNS} resource ARNs can be specified")
    out: list[str] = []
    for arn in arns:
        kind = arn_kind(arn)
        if kind is None:
            raise validation(f"'{arn}' is not a valid resource ARN")
        require(plane, region, kind, arn)
        if arn not in out:
            out.append(arn)
    return out


# -- API operations


def add_tags(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arns = _resources(plane, region, params.get("ResourceArns"))
    tags = check_tags(params.get("Tags"))
    for arn in arns:
        keys = {t["Key"] for t in get_tags(plane, arn)} | {t["Key"] for t in tags}
        if len(keys) > MAX_TAGS_PER_RESOURCE:
            raise fail("TooManyTags", f"The resource '{arn}' would have more than {MAX_TAGS_PER_RESOURCE} tags")
    with plane.store.transaction():
        for arn in arns:
            put_tags(plane, region, arn, tags)
    return {}


def remove_tags(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arns = _resources(plane, region, params.get("ResourceArns"))
    keys = list(params.get("TagKeys") or [])
    with plane.store.transaction():
        for arn in arns:
            for key in keys:
                plane.store.delete_tag(arn, key)
    return {}


def describe_tags(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arns = _resources(plane, region, params.get("ResourceArns"))
    return {"TagDescriptions": [{"ResourceArn": arn, "Tags": get_tags(plane, arn)} for arn in arns]}
