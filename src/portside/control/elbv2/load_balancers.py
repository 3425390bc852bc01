"""CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer.

Only ``Type=application`` exists here. This host has no VPCs: ``Subnets``, ``SubnetMappings``
and ``SecurityGroups`` are accepted as given and echoed back; ``AvailabilityZones`` has one
entry per subnet, named ``<region>a``, ``<region>b``... in the order given (an empty list when
none is given). The DNS name is ``[internal-]<name>-<number>.<region>.elb.localhost`` (AWS's
shape, under ``.localhost``, which resolves to loopback where the resolver follows RFC 6761);
the listeners themselves bind 0.0.0.0 (internet-facing) or 127.0.0.1 (internal) on this host.

Attributes: ``load_balancer_attributes.py``; subnets, security groups and IP address type after
creation: ``load_balancer_network.py``.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

from portside.control.elbv2 import config, load_balancer_attributes, tags
from portside.control.elbv2.common import (
    check_arn,
    check_name,
    fail,
    get,
    load_balancer_arn,
    new_id,
    paginate,
    public,
    require_all,
    require_by_names,
    validation,
    with_marker,
)
from portside.control.elbv2.load_balancer_network import check_ip_address_type, zones
from portside.control.plane import ControlPlane

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
    ip_type = check_ip_address_type(params.get("IpAddressType"))
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
        "AvailabilityZones": zones(region, subnets, mappings),
        "SecurityGroups": groups,
        "IpAddressType": ip_type,
        "_settings": settings,
        "_attributes": {},  # only changed ones: load_balancer_attributes.current() adds the defaults
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
    if load_balancer_attributes.deletion_protected(body):
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


def _by_name(plane: ControlPlane, region: str, name: str) -> dict[str, Any] | None:
    return plane.store.elb_record_named("loadbalancer", region, name)
