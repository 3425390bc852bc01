"""Attributes of container instances: what PutAttributes, DeleteAttributes and ListAttributes decide.

Theory of operation
-------------------
An attribute is a name and an optional value on a container instance (ECS ``Attribute``). The
instance's stored body holds them as DescribeContainerInstances shows them:
``[{"name": "stack", "value": "blue"}, {"name": "ecs.capability.task-eni"}, ...]``.

Two kinds share that list:

- **built-in** attributes, which the host sets each time it registers (``ecs.os-type``,
  ``ecs.availability-zone``, capabilities such as ``ecs.capability.task-eni`` and
  ``com.amazonaws.ecs.capability.*``). Their names start with one of :data:`RESERVED_PREFIXES`.
- **custom** attributes, which users put with PutAttributes: at most
  :data:`MAX_CUSTOM_ATTRIBUTES` per instance. Only these count towards the limit.

Users may read every attribute (ListAttributes filters ``ecs.os-type=linux`` as ECS's own
example does) but may change only custom ones: a built-in name in PutAttributes or
DeleteAttributes is refused, because the next registration would silently undo the change.
Re-registration (:func:`keep_custom`) replaces the built-in attributes and keeps the custom ones.

Each request names its targets per item (``targetId``: a container instance ARN, or its id with
``targetType`` ``container-instance``). :func:`parse_items` checks every item before anything is
looked up; :func:`resolve_target` finds the instance among those of the request's cluster;
:func:`apply_put` and :func:`apply_delete` compute every instance's new list, or raise, so a
request either changes everything it asked for or nothing.

Pure: plain data in, plain data out; the caller loads and stores the instances.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portside.core import arns
from portside.errors import AttributeLimitExceededException, InvalidParameterException, NotFoundError

__all__ = [
    "MAX_ATTRIBUTES_PER_CALL", "MAX_CUSTOM_ATTRIBUTES", "RESERVED_PREFIXES", "TARGET_TYPE",
    "AttributeItem", "apply_delete", "apply_put", "check_list_filter", "is_builtin", "keep_custom",
    "list_attributes", "parse_items", "render", "resolve_target",
]  # fmt: skip

TARGET_TYPE = "container-instance"  # the only targetType ECS has
MAX_ATTRIBUTES_PER_CALL = 10
MAX_CUSTOM_ATTRIBUTES = 10  # per container instance; built-in attributes do not count
MAX_NAME_LENGTH = 128
MAX_VALUE_LENGTH = 128
RESERVED_PREFIXES = ("ecs.", "com.amazonaws.ecs.")

_NAME = re.compile(r"[A-Za-z0-9\-_/\\.]+")
_VALUE = re.compile(r"[A-Za-z0-9\-_.@/\\: ]+")
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} letters, numbers, hyphens (-), underscores (_), forward slashes (/), "
    "back slashes (\\) or periods (.)"
)
VALUE_RULE = (
    f"1 to {MAX_VALUE_LENGTH} letters, numbers, hyphens (-), underscores (_), periods (.), at signs (@), "
    "forward slashes (/), back slashes (\\), colons (:) or spaces, not starting or ending with a space"
)


@dataclass(frozen=True, slots=True)
class AttributeItem:
    """One checked item of a PutAttributes or DeleteAttributes request."""

    index: int  # its place in the request's ``attributes`` list, for messages
    name: str
    value: str | None
    target_id: str  # as given: an ARN, or an id (then target_type was given)

    @property
    def where(self) -> str:
        return f"attributes[{self.index}]"


def is_builtin(name: str) -> bool:
    """True for the names the host sets at registration (``ecs.*``, ``com.amazonaws.ecs.*``)."""
    return name.startswith(RESERVED_PREFIXES)


def parse_items(items: Any, *, deleting: bool) -> list[AttributeItem]:
    """Check a request's ``attributes`` list; every item names a custom attribute and its target.

    Raises InvalidParameterException naming the first item and field that breaks a rule: the
    list holds 1 to :data:`MAX_ATTRIBUTES_PER_CALL` items; ``name`` follows :data:`NAME_RULE`
    and is not built-in; ``value`` (optional) follows :data:`VALUE_RULE`; ``targetType``, if
    given, is ``container-instance``; ``targetId`` is given, and is an ARN unless targetType is.
    """
    if not isinstance(items, list) or not items:
        raise InvalidParameterException("attributes can not be empty.")
    if len(items) > MAX_ATTRIBUTES_PER_CALL:
        raise InvalidParameterException(
            f"attributes has {len(items)} items; at most {MAX_ATTRIBUTES_PER_CALL} are allowed in one call."
        )
    return [_parse_item(i, item, deleting) for i, item in enumerate(items)]


def _parse_item(index: int, item: Any, deleting: bool) -> AttributeItem:
    where = f"attributes[{index}]"
    if not isinstance(item, dict):
        raise InvalidParameterException(
            f"{where} must be an object with name, value, targetType and targetId."
        )
    name = item.get("name")
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise InvalidParameterException(f"{where}.name {_show(name)} is invalid: it must have {NAME_RULE}.")
    if is_builtin(name):
        verb = "deleted" if deleting else "put"
        raise InvalidParameterException(
            f"{where}.name '{name}' is a built-in attribute (names starting with "
            f"{' or '.join(repr(p) for p in RESERVED_PREFIXES)}): the host sets those when it registers, "
            f"so they cannot be {verb}."
        )
    value = item.get("value")
    if value is not None and (
        not isinstance(value, str)
        or len(value) > MAX_VALUE_LENGTH
        or not _VALUE.fullmatch(value)
        or value != value.strip(" ")
    ):
        raise InvalidParameterException(
            f"{where}.value {_show(value)} is invalid: it must have {VALUE_RULE}."
        )
    target_type = item.get("targetType")
    if target_type is not None and target_type != TARGET_TYPE:
        raise InvalidParameterException(
            f"{where}.targetType {_show(target_type)} is invalid: the only target type is '{TARGET_TYPE}'."
        )
    target_id = item.get("targetId")
    if not isinstance(target_id, str) or not target_id:
        raise InvalidParameterException(
            f"{where}.targetId is required: the container instance's ARN, or its id with targetType "
            f"'{TARGET_TYPE}'."
        )
    if not target_id.startswith("arn:"):
        if target_type is None:
            raise InvalidParameterException(
                f"{where}.targetType is required when targetId '{target_id}' is an id rather than an ARN: "
                f"give targetType '{TARGET_TYPE}'."
            )
    else:
        parts = arns.split_arn(target_id)
        if (
            parts is None
            or parts["service"] != "ecs"
            or not parts["resource"].startswith("container-instance/")
        ):
            raise InvalidParameterException(
                f"{where}.targetId '{target_id}' is not a container instance ARN "
                "(arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>)."
            )
    return AttributeItem(index, name, value, target_id)


def resolve_target(item: AttributeItem, instance_arns: Iterable[str], cluster_name: str) -> str:
    """The ARN of the instance ``item`` names among ``instance_arns`` (those of the request's cluster).

    Raises TargetNotFoundException (a NotFoundError) when none matches.
    """
    for arn in instance_arns:
        if item.target_id == arn or (
            not item.target_id.startswith("arn:") and arn.rsplit("/", 1)[-1] == item.target_id
        ):
            return arn
    raise NotFoundError(
        f"{item.where}.targetId: no container instance '{item.target_id}' in cluster '{cluster_name}'.",
        "TargetNotFoundException",
    )


def apply_put(
    current: Mapping[str, Sequence[Mapping[str, str]]], changes: Sequence[tuple[str, AttributeItem]]
) -> dict[str, list[dict[str, str]]]:
    """Every changed instance's new attribute list after putting ``changes`` ((ARN, item) pairs).

    An existing name gets the new value (or loses its value when the item has none), a new name
    is appended. Raises InvalidParameterException when two items put the same name on the same
    instance, and AttributeLimitExceededException when an instance would end with more than
    :data:`MAX_CUSTOM_ATTRIBUTES` custom attributes; then nothing is to be changed.
    """
    _refuse_repeats(changes)
    out: dict[str, list[dict[str, str]]] = {}
    for arn, item in changes:
        attributes = out.setdefault(arn, [dict(a) for a in current[arn]])
        entry = {"name": item.name} if item.value is None else {"name": item.name, "value": item.value}
        for i, existing in enumerate(attributes):
            if existing["name"] == item.name:
                attributes[i] = entry
                break
        else:
            attributes.append(entry)
    for arn, attributes in out.items():
        custom = [a["name"] for a in attributes if not is_builtin(a["name"])]
        if len(custom) > MAX_CUSTOM_ATTRIBUTES:
            raise AttributeLimitExceededException(
                f"Container instance {arn.rsplit('/', 1)[-1]} would have {len(custom)} custom attributes; "
                f"at most {MAX_CUSTOM_ATTRIBUTES} are allowed per container instance "
                "(built-in ecs.* attributes do not count). Remove some with DeleteAttributes first."
            )
    return out


def apply_delete(
    current: Mapping[str, Sequence[Mapping[str, str]]], changes: Sequence[tuple[str, AttributeItem]]
) -> tuple[dict[str, list[dict[str, str]]], list[tuple[str, dict[str, str]]]]:
    """Every changed instance's new attribute list after deleting ``changes``, and what was deleted.

    Deleting a name the instance does not have changes nothing and is not in the result (the
    attribute is absent, as asked). An item with a ``value`` deletes only when the stored value
    is that value; otherwise InvalidParameterException, and nothing is to be changed.
    """
    _refuse_repeats(changes)
    out: dict[str, list[dict[str, str]]] = {}
    deleted: list[tuple[str, dict[str, str]]] = []
    for arn, item in changes:
        attributes = out.setdefault(arn, [dict(a) for a in current[arn]])
        found = next((a for a in attributes if a["name"] == item.name), None)
        if found is None:
            continue
        if item.value is not None and found.get("value") != item.value:
            raise InvalidParameterException(
                f"{item.where}.value '{item.value}' is not the value of attribute '{item.name}' on container "
                f"instance {arn.rsplit('/', 1)[-1]} ({_show(found.get('value'))}); "
                "omit value to delete it whatever its value."
            )
        attributes.remove(found)
        deleted.append((arn, found))
    return {arn: attrs for arn, attrs in out.items() if attrs != list(current[arn])}, deleted


def check_list_filter(attribute_name: Any, attribute_value: Any) -> None:
    """ListAttributes: ``attributeValue`` filters only together with ``attributeName``."""
    if attribute_value is not None and attribute_name is None:
        raise InvalidParameterException(
            "attributeValue requires attributeName: give the name whose value to match."
        )


def list_attributes(
    instances: Iterable[tuple[str, Sequence[Mapping[str, str]]]], name: str | None, value: str | None
) -> list[dict[str, str]]:
    """ListAttributes' items for (ARN, attributes) pairs: one per attribute, built-in ones too,
    filtered by ``name`` and then ``value`` (an attribute without a value never matches a value)."""
    out: list[dict[str, str]] = []
    for arn, attributes in instances:
        for a in attributes:
            if name is not None and a["name"] != name:
                continue
            if value is not None and a.get("value") != value:
                continue
            out.append(render(arn, a))
    return out


def render(arn: str, attribute: Mapping[str, str]) -> dict[str, str]:
    """An attribute as ECS answers it: name, targetId (the instance's ARN) and value when it has one."""
    out = {"name": attribute["name"], "targetId": arn}
    if attribute.get("value") is not None:
        out["value"] = attribute["value"]
    return out


def keep_custom(
    registered: Sequence[Mapping[str, str]], previous: Sequence[Mapping[str, str]]
) -> list[dict[str, str]]:
    """The attributes of a re-registered instance: the host's fresh built-in ones, then the custom
    ones users put before (in their order). A custom name the host now registers itself yields."""
    fresh = [dict(a) for a in registered]
    names = {a["name"] for a in fresh}
    return fresh + [dict(a) for a in previous if not is_builtin(a["name"]) and a["name"] not in names]


def _refuse_repeats(changes: Sequence[tuple[str, AttributeItem]]) -> None:
    seen: dict[tuple[str, str], AttributeItem] = {}
    for arn, item in changes:
        earlier = seen.setdefault((arn, item.name), item)
        if earlier is not item:
            raise InvalidParameterException(
                f"{item.where} repeats {earlier.where}: attribute '{item.name}' on the same "
                f"container instance ({arn.rsplit('/', 1)[-1]}) may appear once per call."
            )


def _show(value: Any) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40] + "...") + f" ({len(value)} characters)"
    return f"of type {type(value).__name__}"
