"""The routing snapshot as JSON: what a load-balancer node on another host needs to serve.

Theory of operation
-------------------
The control plane builds one ``LbConfig`` (``control/elbv2/config.py``) for its own proxy and
the same one, with the certificates' PEM text, for every ``portside lb`` node. This module turns
it into JSON and back, and names each version of it:

- ``config_to_json`` / ``config_from_json``: every model dataclass becomes an object whose keys
  are its field names; tuples become lists. A certificate travels as its ARN only: its PEM text
  sits once in the snapshot's ``certificates`` map, and the node writes it to files of its own
  before it loads the listeners (``config_from_json`` takes those files as ``Certificate``s).
- ``revision``: a digest of the whole snapshot, certificates included. It changes whenever
  anything in the snapshot changes, and two replicas (or one server before and after a
  restart) with the same configuration answer the same revision, so a node never reloads for
  nothing. Revisions are compared for equality only.

Reading is strict: a missing field takes the model's default, a field of the wrong type or one
the model does not have is a ``SnapshotError`` naming its path (``listeners[0].rules[1].priority``),
so a node never serves a configuration it half understands. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from portside.core.lb.model import Certificate, LbConfig, Listener, TargetGroup

__all__ = ["SnapshotError", "config_from_json", "config_to_json", "revision", "without_local_paths"]

#: Revisions are the first 48 bits of a SHA-256: exact in every JSON reader (doubles hold 53 bits).
REVISION_BITS = 48


class SnapshotError(ValueError):
    """A routing snapshot that does not read as the model; the message names the field's path."""


def config_to_json(config: LbConfig) -> dict[str, Any]:
    """``{"listeners": [...], "targetGroups": [...]}``; certificates as ARNs (see the module doc)."""
    return {
        "listeners": [_dump(listener) for listener in config.listeners],
        "targetGroups": [_dump(group) for group in config.target_groups.values()],
    }


def config_from_json(document: Any, certificates: Mapping[str, Certificate]) -> LbConfig:
    """The ``LbConfig`` of ``config_to_json``'s output; ``certificates``: ARN -> the node's files."""
    if not isinstance(document, dict):
        raise SnapshotError("snapshot: expected an object")
    unknown = sorted(set(document) - {"listeners", "targetGroups", "certificates", "revision"})
    if unknown:
        raise SnapshotError(f"snapshot.{unknown[0]}: not a field of a routing snapshot")
    reader = _Reader(certificates)
    listeners = tuple(
        reader.load(Listener, item, f"listeners[{i}]") for i, item in enumerate(_list(document, "listeners"))
    )
    groups = [
        reader.load(TargetGroup, item, f"targetGroups[{i}]")
        for i, item in enumerate(_list(document, "targetGroups"))
    ]
    return LbConfig(listeners=listeners, target_groups={g.arn: g for g in groups})


def revision(document: Mapping[str, Any]) -> int:
    """The revision of a snapshot ``document`` (its ``revision`` key, if any, left out)."""
    body = {k: v for k, v in document.items() if k != "revision"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: REVISION_BITS // 8], "big")


def without_local_paths(config: LbConfig) -> LbConfig:
    """``config`` as another host sees it: every target reached at its address and port.

    The server reaches copies on its own host at their bridge address and container port
    (``Target.connect_address``); those addresses exist only on that host.
    """
    groups = {
        arn: dataclasses.replace(
            group,
            targets=tuple(
                dataclasses.replace(t, connect_address=None, connect_port=None) for t in group.targets
            ),
        )
        for arn, group in config.target_groups.items()
    }
    return LbConfig(listeners=config.listeners, target_groups=groups)


# -- writing


def _dump(value: Any) -> Any:
    if isinstance(value, Certificate):
        return value.arn
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    return value


# -- reading


def _list(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise SnapshotError(f"snapshot.{key}: expected a list")
    return value


class _Reader:
    def __init__(self, certificates: Mapping[str, Certificate]) -> None:
        self.certificates = certificates
        self.hints: dict[type, dict[str, Any]] = {}

    def load(self, cls: type, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise SnapshotError(f"{path}: expected an object")
        hints = self.hints.get(cls)
        if hints is None:
            hints = self.hints[cls] = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise SnapshotError(f"{path}.{unknown[0]}: not a field of {cls.__name__}")
        fields = {name: self.value(hints[name], item, f"{path}.{name}") for name, item in value.items()}
        try:
            return cls(**fields)
        except TypeError as exc:  # a field without a default is missing
            raise SnapshotError(f"{path}: {exc}") from None

    def value(self, hint: Any, value: Any, path: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Certificate:
            if not isinstance(value, str) or value not in self.certificates:
                raise SnapshotError(f"{path}: certificate {value!r} is not in the snapshot's certificates")
            return self.certificates[value]
        if dataclasses.is_dataclass(hint):
            return self.load(hint, value, path)
        if origin in (types.UnionType, typing.Union):
            if value is None and type(None) in args:
                return None
            (inner,) = [a for a in args if a is not type(None)]
            return self.value(inner, value, path)
        if origin is tuple:
            if not isinstance(value, list):
                raise SnapshotError(f"{path}: expected a list")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.value(args[0], item, f"{path}[{i}]") for i, item in enumerate(value))
            if len(value) != len(args):
                raise SnapshotError(f"{path}: expected a list of {len(args)}")
            return tuple(
                self.value(a, item, f"{path}[{i}]")
                for i, (a, item) in enumerate(zip(args, value, strict=True))
            )
        return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise SnapshotError(f"{path}: the snapshot reader does not know the type {hint!r}")
    if not ok:
        raise SnapshotError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")
    return value
