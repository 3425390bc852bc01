"""CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer and load balancer attributes.

Only ``Type=application`` exists here. This host has no VPCs: ``Subnets``, ``SubnetMappings``
and ``SecurityGroups`` are accepted as given and echoed back; ``AvailabilityZones`` has one
entry per subnet, named ``<region>a``, ``<region>b``... in the order given (an empty list when
none is given). The DNS name is ``[internal-]<name>-<number>.<region>.elb.localhost`` (AWS's
shape, under ``.localhost``, which resolves to loopback where the resolver follows RFC 6761);
the listeners themselves bind 0.0.0.0 (internet-facing) or 127.0.0.1 (internal) on this host.

Attributes are limited to what the proxy honours (anything else would be accepted and silently
ignored, which is worse than a clear refusal):

- ``idle_timeout.timeout_seconds`` (1-4000, default 60): each listener's idle timeout;
- ``deletion_protection.enabled`` (default false): enforced by DeleteLoadBalancer;
- ``access_logs.s3.enabled`` and ``connection_logs.s3.enabled``: only ``false`` (portside
  writes no logs to S3), so tools that set them to false keep working.

Any other key is refused with ``InvalidConfigurationRequest``.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

from portside.control.elbv2 import config, tags
from portside.control.elbv2.common import (
    check_arn,
    check_name,
    fail,
    get,
    load_balancer_arn,
    new_id,
    paginate,
    public,
    require,
    require_all,
    require_by_names,
    validation,
    with_marker,
)
from portside.control.plane import ControlPlane
from portside.core.lb.model import DEFAULT_IDLE_TIMEOUT_S

MAX_IDLE_TIMEOUT_S = 4000

IDLE_TIMEOUT = "idle_timeout.timeout_seconds"
DELETION_PROTECTION = "deletion_protection.enabled"
# Attributes with one possible value: what portside really does.
FIXED_ATTRIBUTES = {
    "access_logs.s3.enabled": ("false", "portside writes no access logs to S3"),
    "connection_logs.s3.enabled": ("false", "portside writes no connection logs to S3"),
}
# ALB attribute keys AWS knows, that portside's proxy does not implement.
UNSUPPORTED_ATTRIBUTES = frozenset(
    {
        "access_logs.s3.bucket",
        "access_logs.s3.prefix",
        "connection_logs.s3.bucket",
        "connection_logs.s3.prefix",
        "health_check_logs.s3.enabled",
        "health_check_logs.s3.bucket",
        "health_check_logs.s3.prefix",
        "client_keep_alive.seconds",
        "ipv6.deny_all_igw_traffic",
        "load_balancing.cross_zone.enabled",
        "routing.http.desync_mitigation_mode",
        "routing.http.drop_invalid_header_fields.enabled",
        "routing.http.preserve_host_header.enabled",
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        "routing.http.xff_client_port.enabled",
        "routing.http.xff_header_processing.mode",
        "routing.http2.enabled",
        "waf.fail_open.enabled",
        "zonal_shift.config.enabled",
        "dns_record.client_routing_policy",
    }
)
DEFAULT_ATTRIBUTES = {
    DELETION_PROTECTION: "false",
    IDLE_TIMEOUT: str(DEFAULT_IDLE_TIMEOUT_S),
    **{key: value for key, (value, _why) in FIXED_ATTRIBUTES.items()},
}
_REFUSED_OPTIONS = {
    "CustomerOwnedIpv4Pool": "customer-owned IPv4 pools",
    "IpamPools": "IPAM pools",
    "EnablePrefixForIpv6SourceNat": "IPv6 source NAT prefixes",
}


def canonical_hosted_zone_id(region: str) -> str:
    """A stable Route 53-style zone id for ``region`` (portside has no Route 53)."""
    digest = hashlib.sha256(f"portside-elb:{region}".encode()).digest()
    alphabet = string.ascii_uppercase + string.digits
    return "Z" + "".join(alphabet[b % len(alphabet)] for b in digest[:13])


def dns_name(name: str, lb_id: str, region: str, scheme: str) -> str:
    prefix = "internal-" if scheme == "internal" else ""
    return f"{prefix}{name}-{int(lb_id[:8], 16)}.{region}.elb.localhost"


def _zones(region: str, subnets: list[str], mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    letters = string.ascii_lowercase
    zones: list[dict[str, Any]] = []
    for i, subnet in enumerate(subnets):
        zones.append({"ZoneName": f"{region}{letters[i % 26]}", "SubnetId": subnet, "LoadBalancerAddresses": []})
    for i, mapping in enumerate(mappings, start=len(subnets)):
        address = {
            k: mapping[k]
            for k in ("AllocationId", "PrivateIPv4Address", "IPv6Address")
            if mapping.get(k)
        }
        zones.append(
            {
                "ZoneName": f"{region}{letters[i % 26]}",
                "SubnetId": mapping.get("SubnetId", ""),
                "LoadBalancerAddresses": [address] if address else [],
            }
        )
    return zones


# -- API operations


def create_load_balancer(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name(params.get("Name"), "load balancer")
    if name.lower().startswith("internal-"):
        raise validation(f"Load balancer name '{name}' cannot begin with 'internal-'")
    lb_type = params.get("Type") or "application"
    if lb_type != "application":
        raise fail(
            "InvalidConfigurationRequest",
            f"Load balancer type '{lb_type}' is not supported: portside serves Application Load Balancers "
            "only (Type application)",
        )
    scheme = params.get("Scheme") or "internet-facing"
    ip_type = params.get("IpAddressType") or "ipv4"
    if ip_type != "ipv4":
        raise fail(
            "InvalidConfigurationRequest",
            f"IP address type '{ip_type}' is not supported: portside's listeners bind IPv4 addresses (ipv4)",
        )
    for key, what in _REFUSED_OPTIONS.items():
        if params.get(key):
            raise fail("InvalidConfigurationRequest", f"{key}: portside does not support {what}")
    subnets = list(params.get("Subnets") or [])
    mappings = [dict(m) for m in params.get("SubnetMappings") or []]
    if subnets and mappings:
        raise validation("You can specify subnets or subnet mappings, not both")
    groups = list(params.get("SecurityGroups") or [])
    new_tags = tags.check_tags(params.get("Tags"))
    settings = {
        "Type": lb_type,
        "Scheme": scheme,
        "IpAddressType": ip_type,
        "Subnets": subnets,
        "SubnetMappings": mappings,
        "SecurityGroups": groups,
    }
    existing = _by_name(plane, region, name)
    if existing is not None:
        if existing.get("_settings") == settings:
            return {"LoadBalancers": [public(existing)]}
        raise fail(
            "DuplicateLoadBalancerName",
            f"A load balancer with the same name '{name}' exists, but with different settings",
        )
    lb_id = new_id()
    arn = load_balancer_arn(region, plane.account, name, lb_id)
    body: dict[str, Any] = {
        "LoadBalancerArn": arn,
        "DNSName": dns_name(name, lb_id, region, scheme),
        "CanonicalHostedZoneId": canonical_hosted_zone_id(region),
        "CreatedTime": plane.clock(),
        "LoadBalancerName": name,
        "Scheme": scheme,
        "State": {"Code": "active"},
        "Type": lb_type,
        "AvailabilityZones": _zones(region, subnets, mappings),
        "SecurityGroups": groups,
        "IpAddressType": ip_type,
        "_settings": settings,
        "_attributes": dict(DEFAULT_ATTRIBUTES),
    }
    with plane.store.transaction():
        plane.store.add_load_balancer(region, body)
        tags.put_tags(plane, region, arn, new_tags)
    return {"LoadBalancers": [public(body)]}


def describe_load_balancers(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arns = params.get("LoadBalancerArns")
    names = params.get("Names")
    if arns and names:
        raise validation("Load balancer names and load balancer ARNs cannot be specified at the same time")
    if arns:
        bodies = require_all(plane, region, "loadbalancer", arns)
    elif names:
        bodies = require_by_names(plane, region, "loadbalancer", names, "LoadBalancerNotFound", "Load balancers")
    else:
        bodies = plane.store.load_balancers(region)
    page, marker = paginate(bodies, params)
    return with_marker({"LoadBalancers": [public(b) for b in page]}, marker)


def delete_load_balancer(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    arn = check_arn(params.get("LoadBalancerArn"), "loadbalancer")
    body = get(plane, region, "loadbalancer", arn)
    if body is None:
        return {}  # "If the load balancer does not exist or has already been deleted, the call succeeds."
    if body["_attributes"].get(DELETION_PROTECTION) == "true":
        raise fail(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )
    listener_arns = plane.store.listener_arns_of(arn)
    with plane.store.transaction():
        rule_arns = plane.store.delete_load_balancer(arn, listener_arns)
        tags.delete_tags(plane, [arn, *listener_arns, *rule_arns])
    config.close_listeners(plane, listener_arns)
    config.publish(plane)
    return {}


def describe_load_balancer_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    return {"Attributes": _render_attributes(body["_attributes"])}


def modify_load_balancer_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    attributes = dict(body["_attributes"])
    for item in params.get("Attributes") or []:
        key, value = item.get("Key"), item.get("Value")
        if key is None:
            raise validation("An attribute key must be specified")
        attributes[key] = _check_attribute(key, value)
    body["_attributes"] = attributes
    with plane.store.transaction():
        plane.store.update_load_balancer(body)
    config.publish(plane)
    return {"Attributes": _render_attributes(attributes)}


def _render_attributes(attributes: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": attributes.get(key, default)} for key, default in DEFAULT_ATTRIBUTES.items()]


def _check_attribute(key: str, value: Any) -> str:
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
    if key in FIXED_ATTRIBUTES:
        only, why = FIXED_ATTRIBUTES[key]
        if text.lower() != only:
            raise fail(
                "InvalidConfigurationRequest",
                f"Load balancer attribute '{key}' can only be '{only}': {why}",
            )
        return only
    supported = f"supported: {IDLE_TIMEOUT}, {DELETION_PROTECTION}"
    if key in UNSUPPORTED_ATTRIBUTES:
        raise fail(
            "InvalidConfigurationRequest",
            f"Load balancer attribute '{key}' is not supported: portside's proxy does not implement it ({supported})",
        )
    raise fail("InvalidConfigurationRequest", f"Load balancer attribute key '{key}' is not recognized ({supported})")


def _by_name(plane: ControlPlane, region: str, name: str) -> dict[str, Any] | None:
    return plane.store.elb_record_named("loadbalancer", region, name)
