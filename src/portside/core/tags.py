"""ECS resource tags: AWS's rules for them, and how tags combine (pure; no store, no clock).

A tag is ``{"key": ..., "value": ...}``. The rules are those ECS documents for TagResource and for
every ``tags`` parameter: at most 50 tags per resource, keys of 1-128 and values of 0-256
characters of letters, numbers, spaces and ``_ . : / = + - @``, keys unique, and neither key nor
value starting with ``aws:`` in any case (reserved: ECS sets such tags itself, ``aws:ecs:clusterName``
and ``aws:ecs:serviceName`` when ``enableECSManagedTags`` is on, and they do not count towards 50).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from portside.errors import ClientException, InvalidParameterException

MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256
_PUNCTUATION = set("_.:/=+-@")
RESERVED_PREFIX = "aws:"
#: propagateTags values: where a task's tags are copied from.
PROPAGATE = ("TASK_DEFINITION", "SERVICE", "NONE")


class LimitExceededException(ClientException):
    """A resource would carry more than 50 tags of the user's."""

    code = "LimitExceededException"


def check_tags(tags: Any, field: str = "tags") -> list[dict[str, str]]:
    """The user's tags as given, or InvalidParameterException naming the item and the rule."""
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise InvalidParameterException(f"{field} must be a list of tags.")
    if len(tags) > MAX_TAGS:
        raise InvalidParameterException(f"{field} can have at most {MAX_TAGS} tags; {len(tags)} given.")
    seen: set[str] = set()
    out = []
    for i, tag in enumerate(tags):
        where = f"{field}[{i}]"
        if not isinstance(tag, dict):
            raise InvalidParameterException(f"{where} must be an object with a key and a value.")
        key, value = tag.get("key"), tag.get("value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise InvalidParameterException(f"{where}.key must have 1 to {MAX_KEY} characters.")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise InvalidParameterException(f"{where}.value can have at most {MAX_VALUE} characters.")
        for name, text in (("key", key), ("value", value)):
            if not _allowed(text):
                raise InvalidParameterException(
                    f"{where}.{name} '{text}' is invalid: tags may contain letters, numbers, spaces and _ . : / = + - @ only."
                )
            if text.lower().startswith(RESERVED_PREFIX):
                raise InvalidParameterException(
                    f"{where}.{name} '{text}' is invalid: the aws: prefix is reserved for AWS use."
                )
        if key in seen:
            raise InvalidParameterException(
                f"{where}.key '{key}' is given twice: each tag key must be unique."
            )
        seen.add(key)
        out.append({"key": key, "value": value})
    return out


def check_keys(keys: Any, field: str = "tagKeys") -> list[str]:
    """Keys to remove: 1-128 characters each, none reserved."""
    if not isinstance(keys, list):
        raise InvalidParameterException(f"{field} must be a list of tag keys.")
    for i, key in enumerate(keys):
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise InvalidParameterException(f"{field}[{i}] must have 1 to {MAX_KEY} characters.")
        if key.lower().startswith(RESERVED_PREFIX):
            raise InvalidParameterException(
                f"{field}[{i}] '{key}' is invalid: the aws: prefix is reserved for AWS use."
            )
    return list(keys)


def merged(existing: list[dict[str, str]], given: list[dict[str, str]]) -> list[dict[str, str]]:
    """``existing`` with ``given`` put over it (a given key replaces its value), in first-seen order;
    LimitExceededException when the user's tags would pass 50."""
    by_key = {t["key"]: t.get("value", "") for t in existing}
    for tag in given:
        by_key[tag["key"]] = tag.get("value", "")
    out = [{"key": k, "value": v} for k, v in by_key.items()]
    users = sum(1 for t in out if not t["key"].lower().startswith(RESERVED_PREFIX))
    if users > MAX_TAGS:
        raise LimitExceededException(
            f"The resource would have {users} tags; a resource can have at most {MAX_TAGS} (aws: tags not counted)."
        )
    return out


def without(existing: list[dict[str, str]], keys: list[str]) -> list[dict[str, str]]:
    drop = set(keys)
    return [t for t in existing if t["key"] not in drop]


def task_tags(
    own: list[dict[str, str]],
    propagate: str,
    task_definition_tags: list[dict[str, str]],
    service_tags: list[dict[str, str]] | None,
    managed: dict[str, str] | None,
) -> list[dict[str, str]]:
    """The tags a new task carries: those propagated from its task definition or service (``propagate``),
    then its own (which win on a shared key), then ECS's managed ones (``managed``: aws:ecs:* tags)."""
    source: list[dict[str, str]] = []
    if propagate == "TASK_DEFINITION":
        source = task_definition_tags
    elif propagate == "SERVICE":
        source = service_tags or []
    tags = merged(source, own)
    return merged(tags, [{"key": k, "value": v} for k, v in (managed or {}).items()])


def _allowed(text: str) -> bool:
    for ch in text:
        if ch in _PUNCTUATION:
            continue
        category = unicodedata.category(ch)
        if category[0] not in "LNZ":  # letters, numbers, separators (spaces)
            return False
    return True
