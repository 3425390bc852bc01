"""SetSubnets, SetSecurityGroups, SetIpAddressType: a load balancer's network settings after creation.

This host has no VPCs, so subnets and security groups are names kept as given and echoed by
DescribeLoadBalancers (and by the call itself, as AWS answers it): ``AvailabilityZones`` gets one
entry per subnet, named ``<region>a``, ``<region>b``... in the order given. What portside checks:

- SetSubnets takes ``Subnets`` or ``SubnetMappings`` (one of them, not both, at least one
  subnet, each once, every mapping naming its ``SubnetId``: ``ValidationError``);
- SetSecurityGroups takes the new list (each group once; an empty list removes them all);
  ``EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic`` is a Network Load Balancer setting,
  refused here as AWS refuses it for an Application Load Balancer;
- the IP address type (SetIpAddressType, or SetSubnets' ``IpAddressType``) can only be ``ipv4``:
  listeners bind IPv4 addresses, so ``dualstack`` and ``dualstack-without-public-ipv4`` are
  ``InvalidConfigurationRequest`` naming them, rather than a promise of IPv6 nobody keeps.

A refused call changes nothing. The load balancer's recorded creation settings follow, so a
CreateLoadBalancer repeating the current settings is still the idempotent no-op.
"""

from __future__ import annotations

import string
from typing import Any

from portside.control.elbv2.common import fail, require, validation
from portside.control.plane import ControlPlane

IP_ADDRESS_TYPES = ("ipv4", "dualstack", "dualstack-without-public-ipv4")


def check_ip_address_type(value: Any) -> str:
    """``ipv4`` (the default when None); InvalidConfigurationRequest for the dual-stack types."""
    ip_type = value or "ipv4"
    if ip_type not in IP_ADDRESS_TYPES:
        raise validation(f"IP address type '{ip_type}' is not valid (valid values: {', '.join(IP_ADDRESS_TYPES)})")
    if ip_type != "ipv4":
        raise fail(
            "InvalidConfigurationRequest",
            f"IP address type '{ip_type}' is not supported: portside's listeners bind IPv4 addresses (ipv4)",
        )
    return str(ip_type)


def zones(region: str, subnets: list[str], mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``AvailabilityZones``: one per subnet (or subnet mapping), zones lettered in order."""
    letters = string.ascii_lowercase
    out: list[dict[str, Any]] = []
    for i, subnet in enumerate(subnets):
        out.append({"ZoneName": f"{region}{letters[i % 26]}", "SubnetId": subnet, "LoadBalancerAddresses": []})
    for i, mapping in enumerate(mappings, start=len(subnets)):
        address = {k: mapping[k] for k in ("AllocationId", "PrivateIPv4Address", "IPv6Address") if mapping.get(k)}
        out.append(
            {
                "ZoneName": f"{region}{letters[i % 26]}",
                "SubnetId": mapping.get("SubnetId", ""),
                "LoadBalancerAddresses": [address] if address else [],
            }
        )
    return out


def _once(values: list[str], noun: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise validation(f"{noun} '{value}' is specified more than once")
        seen.add(value)
    return values


def _save(plane: ControlPlane, body: dict[str, Any], **settings: Any) -> None:
    body["_settings"] = {**(body.get("_settings") or {}), **settings}
    with plane.store.transaction():
        plane.store.update_load_balancer(body)


# -- API operations


def set_subnets(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    subnets = [str(s) for s in params.get("Subnets") or []]
    mappings = [dict(m) for m in params.get("SubnetMappings") or []]
    if subnets and mappings:
        raise validation("You can specify subnets or subnet mappings, not both")
    if not subnets and not mappings:
        raise validation("You must specify subnets or subnet mappings")
    if any(not m.get("SubnetId") for m in mappings):
        raise validation("Every subnet mapping must specify a SubnetId")
    _once(subnets or [str(m["SubnetId"]) for m in mappings], "Subnet")
    ip_type = check_ip_address_type(params.get("IpAddressType") or body.get("IpAddressType"))
    if (params.get("EnablePrefixForIpv6SourceNat") or "off") != "off":
        raise fail("InvalidConfigurationRequest", "EnablePrefixForIpv6SourceNat: portside does not support IPv6 source NAT prefixes")
    body["AvailabilityZones"] = zones(region, subnets, mappings)
    body["IpAddressType"] = ip_type
    _save(plane, body, Subnets=subnets, SubnetMappings=mappings, IpAddressType=ip_type)
    return {"AvailabilityZones": body["AvailabilityZones"], "IpAddressType": ip_type}


def set_security_groups(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    if params.get("SecurityGroups") is None:
        raise validation("Security groups must be specified (an empty list removes them all)")
    groups = _once([str(g) for g in params["SecurityGroups"]], "Security group")
    if params.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic") is not None:
        raise fail(
            "InvalidConfigurationRequest",
            "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic is supported by Network Load Balancers only",
        )
    body["SecurityGroups"] = groups
    _save(plane, body, SecurityGroups=groups)
    return {"SecurityGroupIds": groups}


def set_ip_address_type(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    if not params.get("IpAddressType"):
        raise validation("An IP address type must be specified")
    ip_type = check_ip_address_type(params["IpAddressType"])
    body["IpAddressType"] = ip_type
    _save(plane, body, IpAddressType=ip_type)
    return {"IpAddressType": ip_type}
