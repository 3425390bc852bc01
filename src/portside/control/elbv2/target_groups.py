"""CreateTargetGroup, DescribeTargetGroups, ModifyTargetGroup, DeleteTargetGroup and attributes.

Target groups are HTTP or HTTPS (an Application Load Balancer's), of target type ``instance``
(this host's container instance id; targets resolve to the server's ``target_ip``) or ``ip``,
speaking HTTP/1.1 to targets (``ProtocolVersion`` HTTP1). Health check settings and attributes
are validated, with AWS's defaults and messages, by ``core/lb/settings.py``; the health check
interval may not go below the server's ``--min-health-check-interval`` (default 5 s).

A target group's ``LoadBalancerArns`` are computed, not stored: the load balancers with a
listener whose rules (default rule included) forward to it. A target group can serve one load
balancer only (``TargetGroupAssociationLimit``, checked by listeners and rules).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from portside.control.elbv2 import config, tags
from portside.control.elbv2.common import (
    check_arn,
    check_name,
    fail,
    get,
    new_id,
    paginate,
    public,
    require,
    require_all,
    require_by_names,
    target_group_arn,
    validation,
    with_marker,
)
from portside.control.plane import ControlPlane
from portside.core.lb import settings
from portside.core.lb.model import HealthCheck, TargetGroupAttributes

DEFAULT_MIN_HEALTH_CHECK_INTERVAL_S = 5
SUPPORTED_PROTOCOLS = ("HTTP", "HTTPS")
PROTOCOL_VERSIONS = ("HTTP1", "HTTP2", "GRPC")


def min_health_check_interval_s(plane: ControlPlane) -> int:
    """The server's floor for HealthCheckIntervalSeconds (``--min-health-check-interval``)."""
    raw = plane.config.extra.get("min_health_check_interval", str(DEFAULT_MIN_HEALTH_CHECK_INTERVAL_S))
    try:
        return max(1, int(float(raw)))
    except (TypeError, ValueError):
        return DEFAULT_MIN_HEALTH_CHECK_INTERVAL_S


def health_check(body: dict[str, Any]) -> HealthCheck:
    return HealthCheck(**body["_health_check"])


def attributes(body: dict[str, Any]) -> TargetGroupAttributes:
    return TargetGroupAttributes(**body["_attributes"])


def health_check_params(check: HealthCheck) -> dict[str, Any]:
    """The API members describing ``check`` (as CreateTargetGroup takes and DescribeTargetGroups shows)."""
    return {
        "HealthCheckProtocol": check.protocol,
        "HealthCheckPort": check.port,
        "HealthCheckEnabled": check.enabled,
        "HealthCheckIntervalSeconds": check.interval_s,
        "HealthCheckTimeoutSeconds": check.timeout_s,
        "HealthyThresholdCount": check.healthy_threshold,
        "UnhealthyThresholdCount": check.unhealthy_threshold,
        "HealthCheckPath": check.path,
        "Matcher": {"HttpCode": check.matcher},
    }


def usage(plane: ControlPlane, region: str) -> dict[str, list[str]]:
    """Target group ARN -> ARNs of the load balancers whose listener rules forward to it."""
    lb_of = plane.store.listener_load_balancers(region)
    out: dict[str, list[str]] = {}
    for listener, rule in plane.store.rules_by_listener(region):
        lb = lb_of.get(listener)
        if lb is None:
            continue
        for tg in action_target_groups(rule.get("Actions") or []):
            lbs = out.setdefault(tg, [])
            if lb not in lbs:
                lbs.append(lb)
    return out


def action_target_groups(actions: list[dict[str, Any]]) -> list[str]:
    """Every target group ARN API-shaped ``actions`` forward to, in order, once each."""
    found: list[str] = []
    for action in actions:
        candidates = [action.get("TargetGroupArn")]
        forward = action.get("ForwardConfig") or {}
        candidates += [g.get("TargetGroupArn") for g in forward.get("TargetGroups") or []]
        for arn in candidates:
            if arn and arn not in found:
                found.append(arn)
    return found


def render(body: dict[str, Any], used_by: dict[str, list[str]]) -> dict[str, Any]:
    out = public(body)
    out.update(health_check_params(health_check(body)))
    out["LoadBalancerArns"] = list(used_by.get(body["TargetGroupArn"], []))
    return out


# -- API operations


def create_target_group(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name(params.get("Name"), "target group")
    target_type = params.get("TargetType") or "instance"
    if target_type not in ("instance", "ip"):
        raise fail(
            "InvalidConfigurationRequest",
            f"Target type '{target_type}' is not supported: portside's targets are instances (this host) or "
            "IP addresses (instance, ip)",
        )
    protocol = params.get("Protocol")
    if protocol is None:
        raise validation("A protocol must be specified for target type 'instance' or 'ip'")
    if protocol not in SUPPORTED_PROTOCOLS:
        raise fail(
            "InvalidConfigurationRequest",
            f"Target group protocol '{protocol}' is not supported: portside serves Application Load Balancer "
            "target groups (HTTP, HTTPS)",
        )
    port = params.get("Port")
    if port is None:
        raise validation("A port must be specified for target type 'instance' or 'ip'")
    version = params.get("ProtocolVersion") or "HTTP1"
    if version.upper() not in PROTOCOL_VERSIONS:
        raise validation(f"Protocol version '{version}' is not valid (valid values: {', '.join(PROTOCOL_VERSIONS)})")
    if version.upper() != "HTTP1":
        raise fail(
            "InvalidConfigurationRequest",
            f"Protocol version '{version}' is not supported: portside's proxy speaks HTTP/1.1 to targets (HTTP1)",
        )
    if params.get("TargetControlPort") is not None:
        raise fail("InvalidConfigurationRequest", "TargetControlPort is not supported by portside")
    ip_type = params.get("IpAddressType") or "ipv4"
    check = settings.health_check_from_params(params, protocol, min_health_check_interval_s(plane), target_type)
    new_tags = tags.check_tags(params.get("Tags"))
    record: dict[str, Any] = {
        "TargetGroupName": name,
        "Protocol": protocol,
        "Port": port,
        "VpcId": params.get("VpcId"),
        "TargetType": target_type,
        "ProtocolVersion": "HTTP1",
        "IpAddressType": ip_type,
    }
    record = {k: v for k, v in record.items() if v is not None}
    existing = _by_name(plane, region, name)
    if existing is not None:
        same = {k: v for k, v in public(existing).items() if k != "TargetGroupArn"} == record
        if same and existing["_health_check"] == dataclasses.asdict(check):
            return {"TargetGroups": [render(existing, usage(plane, region))]}
        raise fail(
            "DuplicateTargetGroupName",
            f"A target group with the same name '{name}' exists, but with different settings",
        )
    arn = target_group_arn(region, plane.account, name, new_id())
    body: dict[str, Any] = {
        "TargetGroupArn": arn,
        **record,
        "_health_check": dataclasses.asdict(check),
        "_attributes": dataclasses.asdict(TargetGroupAttributes()),
    }
    with plane.store.transaction():
        plane.store.add_target_group(region, body)
        tags.put_tags(plane, region, arn, new_tags)
    config.publish(plane)
    return {"TargetGroups": [render(body, {})]}


def describe_target_groups(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    lb_arn = params.get("LoadBalancerArn")
    arns = params.get("TargetGroupArns")
    names = params.get("Names")
    if sum(1 for given in (lb_arn, arns, names) if given) > 1:
        raise validation("Specify at most one of load balancer ARN, target group ARNs and target group names")
    used_by = usage(plane, region)
    if lb_arn:
        require(plane, region, "loadbalancer", lb_arn)
        bodies = [b for b in _all(plane, region) if lb_arn in used_by.get(b["TargetGroupArn"], [])]
    elif arns:
        bodies = require_all(plane, region, "targetgroup", arns)
    elif names:
        bodies = require_by_names(plane, region, "targetgroup", names, "TargetGroupNotFound", "Target groups")
    else:
        bodies = _all(plane, region)
    bodies = sorted(bodies, key=lambda b: b["TargetGroupName"])  # AWS lists target groups by name
    page, marker = paginate(bodies, params)
    return with_marker({"TargetGroups": [render(b, used_by) for b in page]}, marker)


def modify_target_group(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    check = settings.modify_health_check(
        health_check(body), params, body["Protocol"], min_health_check_interval_s(plane), body["TargetType"]
    )
    body["_health_check"] = dataclasses.asdict(check)
    with plane.store.transaction():
        _update(plane, body)
    config.publish(plane)
    return {"TargetGroups": [render(body, usage(plane, region))]}


def delete_target_group(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arn = check_arn(params.get("TargetGroupArn"), "targetgroup")
    if get(plane, region, "targetgroup", arn) is None:
        return {}  # deleting a deleted target group succeeds, as DeleteLoadBalancer does
    if usage(plane, region).get(arn):
        raise fail("ResourceInUse", f"Target group '{arn}' is currently in use by a listener or a rule")
    with plane.store.transaction():
        plane.store.delete_target_group(arn)
        tags.delete_tags(plane, [arn])
    config.publish(plane)
    return {}


def describe_target_group_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    return {"Attributes": settings.attributes_to_params(attributes(body))}


def modify_target_group_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    new = settings.attributes_from_params(list(params.get("Attributes") or []), attributes(body), body["Protocol"])
    body["_attributes"] = dataclasses.asdict(new)
    with plane.store.transaction():
        _update(plane, body)
    config.publish(plane)
    return {"Attributes": settings.attributes_to_params(new)}


def _update(plane: ControlPlane, body: dict[str, Any]) -> None:
    plane.store.update_target_group(body)


def _all(plane: ControlPlane, region: str) -> list[dict[str, Any]]:
    return plane.store.target_groups(region)


def _by_name(plane: ControlPlane, region: str, name: str) -> dict[str, Any] | None:
    return plane.store.elb_record_named("targetgroup", region, name)
