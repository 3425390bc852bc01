"""The ELBv2 action table: query-protocol ``Action`` name -> control-plane operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control.elbv2 import (
    certificates,
    listener_attributes,
    listener_certificates,
    listeners,
    load_balancer_attributes,
    load_balancer_network,
    load_balancers,
    rules,
    ssl_policies,
    tags,
    target_groups,
    targets,
)
from portside.control.plane import ControlPlane
from portside.errors import UnknownOperation

SERVICE = "elbv2"
API_VERSION = "2015-12-01"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "CreateLoadBalancer": load_balancers.create_load_balancer,
    "DescribeLoadBalancers": load_balancers.describe_load_balancers,
    "DeleteLoadBalancer": load_balancers.delete_load_balancer,
    "DescribeLoadBalancerAttributes": load_balancer_attributes.describe_load_balancer_attributes,
    "ModifyLoadBalancerAttributes": load_balancer_attributes.modify_load_balancer_attributes,
    "SetSubnets": load_balancer_network.set_subnets,
    "SetSecurityGroups": load_balancer_network.set_security_groups,
    "SetIpAddressType": load_balancer_network.set_ip_address_type,
    "CreateTargetGroup": target_groups.create_target_group,
    "DescribeTargetGroups": target_groups.describe_target_groups,
    "ModifyTargetGroup": target_groups.modify_target_group,
    "DeleteTargetGroup": target_groups.delete_target_group,
    "DescribeTargetGroupAttributes": target_groups.describe_target_group_attributes,
    "ModifyTargetGroupAttributes": target_groups.modify_target_group_attributes,
    "RegisterTargets": targets.register_targets,
    "DeregisterTargets": targets.deregister_targets,
    "DescribeTargetHealth": targets.describe_target_health,
    "CreateListener": listeners.create_listener,
    "DescribeListeners": listeners.describe_listeners,
    "ModifyListener": listeners.modify_listener,
    "DeleteListener": listeners.delete_listener,
    "DescribeListenerAttributes": listener_attributes.describe_listener_attributes,
    "ModifyListenerAttributes": listener_attributes.modify_listener_attributes,
    "AddListenerCertificates": listener_certificates.add_listener_certificates,
    "RemoveListenerCertificates": listener_certificates.remove_listener_certificates,
    "DescribeListenerCertificates": listener_certificates.describe_listener_certificates,
    "CreateRule": rules.create_rule,
    "DescribeRules": rules.describe_rules,
    "ModifyRule": rules.modify_rule,
    "DeleteRule": rules.delete_rule,
    "SetRulePriorities": rules.set_rule_priorities,
    "DescribeSSLPolicies": ssl_policies.describe_ssl_policies,
    "AddTags": tags.add_tags,
    "RemoveTags": tags.remove_tags,
    "DescribeTags": tags.describe_tags,
}

# Members an operation range-checks itself, so the model's bounds are not applied at the edge: the
# health check interval floor is the server's --min-health-check-interval (AWS's 5 s by default,
# lower for local use; the timeout floor follows it), checked with AWS's wording by settings.py.
SELF_VALIDATED: dict[str, tuple[str, ...]] = {
    "CreateTargetGroup": ("HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds"),
    "ModifyTargetGroup": ("HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds"),
}

# portside's own JSON actions (X-Amz-Target ``Portside.<Action>``), outside every AWS model.
PORTSIDE_TARGET_PREFIX = "Portside."
PORTSIDE_OPERATIONS: dict[str, Callable[[ControlPlane, str, dict[str, Any]], Any]] = {
    "ImportCertificate": certificates.api_import_certificate,
    "Doctor": lambda plane, region, params: api_doctor(plane),
}


async def api_doctor(plane: ControlPlane) -> dict[str, Any]:
    """``Portside.Doctor``: the doctor's report for the server's host (see ``portside doctor``)."""
    if plane.doctor_report is None:
        raise UnknownOperation("Unknown operation Portside.Doctor")
    return await plane.doctor_report()
