"""DescribeSSLPolicies, and the check CreateListener and ModifyListener make of ``SslPolicy``.

The policies are AWS's predefined ones (``core/lb/ssl_policies.py``), listed in AWS's shape:
``SslProtocols``, ``Ciphers`` (``Name``, ``Priority`` from 1), ``Name`` and
``SupportedLoadBalancerTypes``. ``Names`` picks policies (every one must exist, else
``SSLPolicyNotFound`` naming the missing ones); ``LoadBalancerType`` keeps those that serve
that type (``gateway``: none). Pages with ``Marker``/``PageSize``.
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2.common import fail, paginate, with_marker
from portside.control.plane import ControlPlane
from portside.core.lb import ssl_policies
from portside.core.lb.ssl_policies import SslPolicy


def not_found(names: list[str]) -> Exception:
    quoted = ", ".join(f"'{n}'" for n in names)
    return fail("SSLPolicyNotFound", f"SSL policy {quoted} not found" if len(names) == 1 else f"SSL policies {quoted} not found")


def check_policy(value: Any) -> str:
    """``value`` if it names a policy; ``SSLPolicyNotFound`` naming it otherwise."""
    name = str(value)
    if ssl_policies.policy(name) is None:
        raise not_found([name])
    return name


def render(policy: SslPolicy) -> dict[str, Any]:
    return {
        "SslProtocols": list(policy.protocols),
        "Ciphers": [{"Name": name, "Priority": i} for i, name in enumerate(policy.ciphers, start=1)],
        "Name": policy.name,
        "SupportedLoadBalancerTypes": list(ssl_policies.SUPPORTED_LOAD_BALANCER_TYPES),
    }


def describe_ssl_policies(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    names = list(dict.fromkeys(params.get("Names") or []))
    if names:
        missing = [n for n in names if ssl_policies.policy(n) is None]
        if missing:
            raise not_found(missing)
        chosen = [ssl_policies.POLICIES[n] for n in names]
    else:
        chosen = list(ssl_policies.POLICIES.values())
    lb_type = params.get("LoadBalancerType")
    if lb_type and lb_type not in ssl_policies.SUPPORTED_LOAD_BALANCER_TYPES:
        chosen = []
    page, marker = paginate(chosen, params)
    return with_marker({"SslPolicies": [render(p) for p in page]}, marker)
