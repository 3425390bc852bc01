"""Shared pieces of the ELBv2 control plane: errors, ARNs and ids, lookups, paging.

Every record is kept AWS-shaped (the members DescribeX returns) as JSON in the ``elb_*`` tables
of the store (``control/store/elbv2.py``); members whose names start with ``_`` are portside's own
(settings kept for idempotency checks, attributes) and are never rendered. All state is keyed by
region (one account per server, as for ECS): an ARN naming another region or account is simply
not found.

Errors are ``ElbError(code, message)`` with the *short* codes of the botocore model's error
shapes (``TargetGroupNotFound``, not ``TargetGroupNotFoundException``), plus ``ValidationError``,
the code AWS's query front end uses for malformed values; :data:`MODEL_CODES` lists the former
so tests can check every code portside answers exists in the model.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
from collections.abc import Iterable
from typing import Any, TypeVar

from portside.api import shapes
from portside.control.plane import ControlPlane
from portside.core.lb.errors import ElbError

T = TypeVar("T")

SERVICE = "elasticloadbalancing"
# AWS's page size bounds for Describe* (the model's PageSize is 1-400).
MAX_PAGE_SIZE = 400
# The query front end's code for a malformed or out-of-range value (not a modelled shape).
VALIDATION_ERROR = "ValidationError"

_ARN = re.compile(
    r"^arn:aws:elasticloadbalancing:(?P<region>[a-z0-9-]+):(?P<account>\d+):"
    r"(?P<kind>loadbalancer|targetgroup|listener|listener-rule)/(?P<rest>.+)$"
)
_HEX16 = r"[0-9a-f]{16}"
_NAME = r"[A-Za-z0-9-]{1,32}"
_RESOURCE_RE = {
    "loadbalancer": re.compile(rf"^app/{_NAME}/{_HEX16}$"),
    "targetgroup": re.compile(rf"^{_NAME}/{_HEX16}$"),
    "listener": re.compile(rf"^app/{_NAME}/{_HEX16}/{_HEX16}$"),
    "listener-rule": re.compile(rf"^app/{_NAME}/{_HEX16}/{_HEX16}/{_HEX16}$"),
}
_KIND_NOUN = {
    "loadbalancer": "load balancer",
    "targetgroup": "target group",
    "listener": "listener",
    "listener-rule": "rule",
}
_NOT_FOUND = {
    "loadbalancer": ("LoadBalancerNotFound", "One or more load balancers not found"),
    "targetgroup": ("TargetGroupNotFound", "One or more target groups not found"),
    "listener": ("ListenerNotFound", "One or more listeners not found"),
    "listener-rule": ("RuleNotFound", "One or more rules not found"),
}


# --------------------------------------------------------------------------- errors


@functools.cache
def model_codes() -> frozenset[str]:
    """Every error code (short form) the botocore ELBv2 model declares."""
    return frozenset(
        shape.metadata["error"]["code"] for shape in shapes.service_model("elbv2").error_shapes
    )


@functools.cache
def _model_statuses() -> dict[str, int]:
    return {
        shape.metadata["error"]["code"]: int(shape.metadata["error"].get("httpStatusCode", 400))
        for shape in shapes.service_model("elbv2").error_shapes
    }


def fail(code: str, message: str) -> ElbError:
    """The error to raise for ``code`` (a model short code or ``ValidationError``), with the
    model's HTTP status for it."""
    return ElbError(code, message, _model_statuses().get(code, 400))


def validation(message: str) -> ElbError:
    return ElbError(VALIDATION_ERROR, message)


# --------------------------------------------------------------------------- ids and ARNs


def new_id() -> str:
    """16 hex digits, as the last segment of every ELBv2 ARN."""
    return secrets.token_hex(8)


def load_balancer_arn(region: str, account: str, name: str, lb_id: str) -> str:
    return f"arn:aws:{SERVICE}:{region}:{account}:loadbalancer/app/{name}/{lb_id}"


def target_group_arn(region: str, account: str, name: str, tg_id: str) -> str:
    return f"arn:aws:{SERVICE}:{region}:{account}:targetgroup/{name}/{tg_id}"


def listener_arn(lb_arn: str, listener_id: str) -> str:
    return lb_arn.replace(":loadbalancer/app/", ":listener/app/", 1) + "/" + listener_id


def rule_arn(lis_arn: str, rule_id: str) -> str:
    return lis_arn.replace(":listener/app/", ":listener-rule/app/", 1) + "/" + rule_id


def arn_kind(arn: Any) -> str | None:
    """``loadbalancer``, ``targetgroup``, ``listener`` or ``listener-rule`` for a well-formed ARN."""
    if not isinstance(arn, str):
        return None
    match = _ARN.match(arn)
    if match is None or not _RESOURCE_RE[match["kind"]].match(match["rest"]):
        return None
    return match["kind"]


def check_arn(arn: Any, kind: str) -> str:
    """``arn`` if it is a well-formed ARN of ``kind``; else ValidationError as AWS answers it."""
    if arn_kind(arn) != kind:
        raise validation(f"'{arn}' is not a valid {_KIND_NOUN[kind]} ARN")
    return str(arn)


def not_found(kind: str) -> ElbError:
    code, message = _NOT_FOUND[kind]
    return fail(code, message)


# --------------------------------------------------------------------------- lookups

def get(plane: ControlPlane, region: str, kind: str, arn: str) -> dict[str, Any] | None:
    """The stored record of ``kind`` with ``arn`` in ``region``, or None."""
    return plane.store.elb_record(kind, region, arn)


def require(plane: ControlPlane, region: str, kind: str, arn: Any) -> dict[str, Any]:
    """The stored record, ValidationError for a malformed ARN, the kind's NotFound error if absent."""
    body = get(plane, region, kind, check_arn(arn, kind))
    if body is None:
        raise not_found(kind)
    return body


def require_all(plane: ControlPlane, region: str, kind: str, arns: Iterable[Any]) -> list[dict[str, Any]]:
    """Records for ``arns`` in the order given (duplicates once); NotFound if any is missing."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for arn in arns:
        body = require(plane, region, kind, arn)
        if arn not in seen:
            seen.add(arn)
            out.append(body)
    return out


def require_by_names(
    plane: ControlPlane, region: str, kind: str, names: list[str], code: str, noun: str
) -> list[dict[str, Any]]:
    """The records of ``kind`` (loadbalancer, targetgroup) with these names, in order (duplicates once); ``code`` for a missing one."""
    bodies = []
    for name in dict.fromkeys(names):
        body = plane.store.elb_record_named(kind, region, name)
        if body is None:
            raise fail(code, f"{noun} '[{name}]' not found")
        bodies.append(body)
    return bodies


def public(body: dict[str, Any]) -> dict[str, Any]:
    """The record without portside's own ``_`` members."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- paging


def paginate(items: list[T], params: dict[str, Any]) -> tuple[list[T], str | None]:
    """One page per ``PageSize`` (1-400, default 400) from ``Marker``, and the next marker."""
    size = params.get("PageSize")
    if size is None:
        size = MAX_PAGE_SIZE
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
        raise validation(f"Page size must be between 1 and {MAX_PAGE_SIZE}")
    start = _decode_marker(params.get("Marker"))
    page = items[start : start + size]
    marker = _encode_marker(start + size) if start + size < len(items) else None
    return page, marker


def with_marker(result: dict[str, Any], marker: str | None) -> dict[str, Any]:
    if marker is not None:
        result["NextMarker"] = marker
    return result


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_marker(marker: Any) -> int:
    if marker in (None, ""):
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(marker).encode()))["o"]
        if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise validation(f"The marker '{marker}' is not valid")


# --------------------------------------------------------------------------- names


def check_name(name: Any, noun: str) -> str:
    """A load balancer or target group name: 1-32 alphanumerics or hyphens, no hyphen at either end."""
    if not isinstance(name, str) or not name:
        raise validation(f"{noun[0].upper()}{noun[1:]} name must be specified")
    if len(name) > 32:
        raise validation(f"{noun[0].upper()}{noun[1:]} name '{name}' cannot be longer than 32 characters")
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise validation(
            f"{noun[0].upper()}{noun[1:]} name '{name}' can contain only alphanumeric characters and hyphens"
        )
    if name.startswith("-") or name.endswith("-"):
        raise validation(f"{noun[0].upper()}{noun[1:]} name '{name}' cannot begin or end with a hyphen")
    return name
