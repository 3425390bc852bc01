"""DescribeLoadBalancerAttributes and ModifyLoadBalancerAttributes.

DescribeLoadBalancerAttributes answers every attribute an Application Load Balancer has, each
with its value (AWS's default until it is changed), as AWS does, so tools that read them all
(Terraform, CloudFormation drift checks) find every key. Three of them portside applies:

- ``idle_timeout.timeout_seconds`` (1-4000, default 60): each listener's idle timeout;
- ``deletion_protection.enabled`` (default false): enforced by DeleteLoadBalancer;
- every other key keeps AWS's default value, and a write of that default is accepted (it
  changes nothing: it is what portside does, or the feature is absent and off). A write of any
  other value is refused with ``InvalidConfigurationRequest`` naming the attribute and saying
  why, and nothing in the request is applied: portside never stores a setting its proxy would
  silently ignore.

Keys AWS does not know for an Application Load Balancer (Network Load Balancer ones included)
are refused by name.
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2 import config
from portside.control.elbv2.common import fail, require, validation
from portside.control.plane import ControlPlane
from portside.core.lb.model import DEFAULT_IDLE_TIMEOUT_S

MAX_IDLE_TIMEOUT_S = 4000
IDLE_TIMEOUT = "idle_timeout.timeout_seconds"
DELETION_PROTECTION = "deletion_protection.enabled"
DENY_IGW = "ipv6.deny_all_igw_traffic"

# What portside applies: key -> AWS's default.
APPLIED = {
    DELETION_PROTECTION: "false",
    IDLE_TIMEOUT: str(DEFAULT_IDLE_TIMEOUT_S),
}
# Every other ALB attribute, with AWS's default (the only value portside accepts) and why no
# other value can be. ``ipv6.deny_all_igw_traffic`` depends on the scheme (see ``defaults``).
FIXED: dict[str, tuple[str, str]] = {
    "access_logs.s3.enabled": ("false", "portside writes no access logs to S3"),
    "access_logs.s3.bucket": ("", "portside writes no access logs to S3"),
    "access_logs.s3.prefix": ("", "portside writes no access logs to S3"),
    "connection_logs.s3.enabled": ("false", "portside writes no connection logs to S3"),
    "connection_logs.s3.bucket": ("", "portside writes no connection logs to S3"),
    "connection_logs.s3.prefix": ("", "portside writes no connection logs to S3"),
    "health_check_logs.s3.enabled": ("false", "portside writes no health check logs to S3"),
    "health_check_logs.s3.bucket": ("", "portside writes no health check logs to S3"),
    "health_check_logs.s3.prefix": ("", "portside writes no health check logs to S3"),
    "client_keep_alive.seconds": ("3600", "portside's proxy does not limit a client connection's lifetime"),
    DENY_IGW: ("", "this host has no internet gateway; listeners bind by scheme"),
    "load_balancing.cross_zone.enabled": ("true", "an Application Load Balancer always balances across zones"),
    "routing.http.desync_mitigation_mode": ("defensive", "portside's proxy has one request parser"),
    "routing.http.drop_invalid_header_fields.enabled": ("false", "portside's proxy does not implement it"),
    "routing.http.preserve_host_header.enabled": ("false", "portside's proxy does not implement it"),
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": ("false", "portside's proxy does not implement it"),
    "routing.http.xff_client_port.enabled": ("false", "portside's proxy does not implement it"),
    "routing.http.xff_header_processing.mode": ("append", "portside's proxy always appends to X-Forwarded-For"),
    "routing.http2.enabled": ("true", "portside's proxy does not implement turning it off"),
    "waf.fail_open.enabled": ("false", "portside has no WAF"),
    "zonal_shift.config.enabled": ("false", "portside has no zonal shift"),
}


def defaults(lb: dict[str, Any]) -> dict[str, str]:
    """Every attribute of ``lb`` with AWS's default value, in the order DescribeX lists them."""
    out = dict(APPLIED)
    for key, (value, _why) in FIXED.items():
        out[key] = value
    out[DENY_IGW] = "true" if lb.get("Scheme") == "internal" else "false"
    return dict(sorted(out.items()))


def current(lb: dict[str, Any]) -> dict[str, str]:
    """Every attribute of ``lb`` with its current value."""
    stored = lb.get("_attributes") or {}
    return {key: stored.get(key, default) for key, default in defaults(lb).items()}


def deletion_protected(lb: dict[str, Any]) -> bool:
    return current(lb)[DELETION_PROTECTION] == "true"


# -- API operations


def describe_load_balancer_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    return {"Attributes": _render(current(body))}


def modify_load_balancer_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    fixed = defaults(body)
    changes: dict[str, str] = {}
    for item in params.get("Attributes") or []:
        key, value = item.get("Key"), item.get("Value")
        if key is None:
            raise validation("An attribute key must be specified")
        changes[key] = _check(key, value, fixed)
    attributes = {k: v for k, v in dict(body.get("_attributes") or {}).items() if k in APPLIED}
    attributes.update({k: v for k, v in changes.items() if k in APPLIED})
    body["_attributes"] = attributes
    with plane.store.transaction():
        plane.store.update_load_balancer(body)
    config.publish(plane)
    return {"Attributes": _render(current(body))}


def _render(attributes: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in attributes.items()]


def _check(key: str, value: Any, fixed: dict[str, str]) -> str:
    text = "" if value is None else str(value)
    if key == IDLE_TIMEOUT:
        if not text.isdigit() or not 1 <= int(text) <= MAX_IDLE_TIMEOUT_S:
            raise fail(
                "InvalidConfigurationRequest",
                f"Load balancer attribute '{IDLE_TIMEOUT}' must be an integer from 1 to {MAX_IDLE_TIMEOUT_S}, "
                f"not '{text}'",
            )
        return str(int(text))
    if key == DELETION_PROTECTION:
        if text.lower() not in ("true", "false"):
            raise fail(
                "InvalidConfigurationRequest",
                f"Load balancer attribute '{DELETION_PROTECTION}' must be 'true' or 'false', not '{text}'",
            )
        return text.lower()
    if key in FIXED:
        only = fixed[key]
        if text.lower() != only:
            why = FIXED[key][1]
            raise fail(
                "InvalidConfigurationRequest",
                f"Load balancer attribute '{key}' can only be '{only}' (its default) on portside: {why}",
            )
        return only
    raise fail(
        "InvalidConfigurationRequest",
        f"Load balancer attribute key '{key}' is not recognized for a load balancer of type 'application'",
    )
