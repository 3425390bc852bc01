"""CreateListener, DescribeListeners, ModifyListener, DeleteListener.

A listener is (protocol HTTP|HTTPS, port) on a load balancer, bound on this host at 0.0.0.0
(internet-facing) or 127.0.0.1 (internal). Ports are host-global: one portside listener per
port across every load balancer and region (``DuplicateListener``), and a port some other
process holds is refused with ``InvalidConfigurationRequest`` naming the holder, because
CreateListener binds the socket (``runtime.bind_listener``) before anything is stored. The
API's own port, and a port where a target on this host is registered, are refused with
``ValidationError`` (a loop into portside, ``core/lb/loops.py``).

HTTPS listeners need exactly one certificate imported with ``portside cert import``
(``CertificateNotFound`` otherwise); ``SslPolicy`` names one of AWS's predefined security
policies (``SSLPolicyNotFound`` otherwise; default ``ELBSecurityPolicy-2016-08``), whose
protocol versions and ciphers the proxy applies to the listener (``proxy/tls.py``).
``AlpnPolicy`` may only be ``HTTP1Only`` or ``None`` (the proxy speaks HTTP/1.1); mutual TLS is
refused. Creating a listener that exists with the same settings returns it (idempotent).

ModifyListener changing the port or the protocol rebinds: the runtime keys sockets by listener
ARN, so the old socket is closed, the new one bound, and on failure the old one bound again
(nothing is stored).
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2 import config, loops, rules, tags
from portside.control.elbv2.certificates import require_certificates
from portside.control.elbv2.common import (
    fail,
    listener_arn,
    new_id,
    paginate,
    public,
    require,
    require_all,
    validation,
    with_marker,
)
from portside.control.elbv2.ssl_policies import check_policy
from portside.control.plane import ControlPlane
from portside.core.lb.model import DEFAULT_SSL_POLICY, Listener
from portside.core.lb.runtime import ListenerBindError

MAX_LISTENERS_PER_LOAD_BALANCER = 50
SUPPORTED_ALPN = ("HTTP1Only", "None")
KNOWN_ALPN = ("HTTP1Only", "HTTP2Only", "HTTP2Optional", "HTTP2Preferred", "None")


# --------------------------------------------------------------------------- checks


def _protocol(value: Any) -> str:
    if value is None:
        raise validation("A listener protocol must be specified")
    if value not in ("HTTP", "HTTPS"):
        raise validation(
            f"Listener protocol '{value}' must be one of 'HTTP, HTTPS' for a load balancer of type 'application'"
        )
    return str(value)


def _alpn(value: Any) -> list[str] | None:
    if value is None:
        return None
    names = list(value)
    if not names:
        return None
    if len(names) > 1:
        raise validation("At most one ALPN policy can be specified")
    name = names[0]
    if name not in KNOWN_ALPN:
        raise fail("ALPNPolicyNotFound", f"ALPN policy '{name}' not found")
    if name not in SUPPORTED_ALPN:
        raise fail(
            "InvalidConfigurationRequest",
            f"ALPN policy '{name}' is not supported: portside's proxy speaks HTTP/1.1 ({', '.join(SUPPORTED_ALPN)})",
        )
    return [name]


def _mutual_auth(value: Any) -> None:
    if value and (value.get("Mode") or "off") != "off":
        raise fail("InvalidConfigurationRequest", "Mutual TLS authentication is not supported by portside")


def _tls(
    plane: ControlPlane, region: str, protocol: str, certificates: Any, ssl_policy: Any, current: dict[str, Any] | None
) -> dict[str, Any]:
    """``Certificates`` and ``SslPolicy`` members for ``protocol`` (kept from ``current`` when not given)."""
    if protocol == "HTTP":
        if certificates:
            raise fail("InvalidConfigurationRequest", "Certificates can be specified for HTTPS listeners only")
        if ssl_policy:
            raise fail("InvalidConfigurationRequest", "An SSL policy can be specified for HTTPS listeners only")
        return {}
    if certificates is None and current is not None and current.get("Protocol") == "HTTPS":
        certs = current.get("Certificates") or []
    else:
        certs = require_certificates(plane, region, certificates)
    if not certs:
        raise validation("A certificate must be specified for HTTPS listeners")
    if len(certs) > 1:
        raise fail("TooManyCertificates", "Exactly one certificate (the default certificate) can be specified")
    if ssl_policy:
        policy = check_policy(ssl_policy)
    elif current is not None and current.get("SslPolicy"):
        policy = current["SslPolicy"]
    else:
        policy = DEFAULT_SSL_POLICY
    return {"Certificates": certs, "SslPolicy": policy}


def _port_holder(plane: ControlPlane, port: int, except_arn: str | None) -> dict[str, Any] | None:
    """The stored listener (any region) on ``port``, other than ``except_arn``."""
    for body in plane.store.listeners_on_port(port):
        if body["ListenerArn"] != except_arn:
            return body
    return None


def _bind_error(exc: ListenerBindError) -> Exception:
    if exc.duplicate:
        return fail("DuplicateListener", exc.message)
    return fail("InvalidConfigurationRequest", exc.message)


def _model(plane: ControlPlane, region: str, body: dict[str, Any], lb: dict[str, Any], rule_bodies: list[dict[str, Any]]) -> Listener:
    certificates = {
        c["CertificateArn"]: c
        for c in plane.store.certificates(region)
    }
    return config.listener_model(body, lb, rule_bodies, certificates)


def _render(body: dict[str, Any]) -> dict[str, Any]:
    return public(body)


# --------------------------------------------------------------------------- API operations


def create_listener(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    lb = require(plane, region, "loadbalancer", params.get("LoadBalancerArn"))
    lb_arn = lb["LoadBalancerArn"]
    protocol = _protocol(params.get("Protocol"))
    port = params.get("Port")
    if port is None:
        raise validation("A listener port must be specified")
    loops.check_listener_port(plane, port)
    tls = _tls(plane, region, protocol, params.get("Certificates"), params.get("SslPolicy"), None)
    alpn = _alpn(params.get("AlpnPolicy"))
    _mutual_auth(params.get("MutualAuthentication"))
    holder = _port_holder(plane, port, None)
    if holder is not None and holder["LoadBalancerArn"] != lb_arn:
        raise fail(
            "DuplicateListener",
            f"A listener already exists on port {port} for load balancer '{holder['LoadBalancerArn']}' "
            "(listener ports are shared by every load balancer on this host)",
        )
    actions = rules.check_actions(plane, region, lb_arn, params.get("DefaultActions"), protocol, port)
    new_tags = tags.check_tags(params.get("Tags"))
    settings: dict[str, Any] = {"Port": port, "Protocol": protocol, **tls, "DefaultActions": actions}
    if alpn is not None:
        settings["AlpnPolicy"] = alpn
    if holder is not None:
        same = {k: v for k, v in public(holder).items() if k not in ("ListenerArn", "LoadBalancerArn")}
        if same == settings:
            return {"Listeners": [_render(holder)]}
        raise fail("DuplicateListener", "A listener already exists on this port for this load balancer")
    if plane.store.count_listeners(lb_arn) >= MAX_LISTENERS_PER_LOAD_BALANCER:
        raise fail("TooManyListeners", f"A load balancer can have at most {MAX_LISTENERS_PER_LOAD_BALANCER} listeners")
    arn = listener_arn(lb_arn, new_id())
    body: dict[str, Any] = {"ListenerArn": arn, "LoadBalancerArn": lb_arn, **settings}
    default_rule = rules.default_rule_body(arn, actions)
    bound = False
    if plane.lb is not None:
        try:
            plane.lb.bind_listener(_model(plane, region, body, lb, [default_rule]))
        except ListenerBindError as exc:
            raise _bind_error(exc) from None
        bound = True
    try:
        with plane.store.transaction():
            plane.store.add_listener(region, body)
            rules.insert_rule(plane, region, arn, default_rule)
            tags.put_tags(plane, region, arn, new_tags)
    except BaseException:
        if bound:
            config.close_listeners(plane, [arn])
        raise
    config.publish(plane)
    return {"Listeners": [_render(body)]}


def describe_listeners(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    lb_arn = params.get("LoadBalancerArn")
    arns = params.get("ListenerArns")
    if lb_arn and arns:
        raise validation("A load balancer ARN and listener ARNs cannot be specified at the same time")
    if lb_arn:
        require(plane, region, "loadbalancer", lb_arn)
        bodies = plane.store.listeners_of(lb_arn)
    elif arns:
        bodies = require_all(plane, region, "listener", arns)
    else:
        raise validation("You must specify either listener ARNs or a load balancer ARN")
    page, marker = paginate(bodies, params)
    return with_marker({"Listeners": [_render(b) for b in page]}, marker)


def modify_listener(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    current = require(plane, region, "listener", params.get("ListenerArn"))
    arn = current["ListenerArn"]
    lb = require(plane, region, "loadbalancer", current["LoadBalancerArn"])
    protocol = _protocol(params.get("Protocol") or current["Protocol"])
    port = params.get("Port") or current["Port"]
    tls = _tls(plane, region, protocol, params.get("Certificates"), params.get("SslPolicy"), current)
    alpn = _alpn(params["AlpnPolicy"]) if params.get("AlpnPolicy") is not None else current.get("AlpnPolicy")
    _mutual_auth(params.get("MutualAuthentication"))
    actions = current["DefaultActions"]
    if params.get("DefaultActions") is not None:
        actions = rules.check_actions(plane, region, lb["LoadBalancerArn"], params["DefaultActions"], protocol, port)
    if port != current["Port"]:
        loops.check_listener_port(plane, port)
        holder = _port_holder(plane, port, arn)
        if holder is not None:
            raise fail(
                "DuplicateListener",
                f"A listener already exists on port {port} for load balancer '{holder['LoadBalancerArn']}'",
            )
    body: dict[str, Any] = {"ListenerArn": arn, "LoadBalancerArn": current["LoadBalancerArn"], "Port": port,
                            "Protocol": protocol, **tls, "DefaultActions": actions}
    if alpn:
        body["AlpnPolicy"] = alpn
    if protocol == "HTTPS" and current.get("_sniCertificates"):
        body["_sniCertificates"] = current["_sniCertificates"]  # SNI certificates outlive a modify
    if current.get("_attributes"):
        body["_attributes"] = current["_attributes"]  # so do its attributes (listener_attributes.py)
    rule_bodies = rules.listener_rules(plane, arn)
    default_rule = next(r for r in rule_bodies if r.get("IsDefault"))
    new_default = dict(default_rule, Actions=actions)
    new_rules = [new_default if r.get("IsDefault") else r for r in rule_bodies]
    rebind = plane.lb is not None and (port != current["Port"] or protocol != current["Protocol"])
    if rebind:
        _rebind(plane, _model(plane, region, current, lb, rule_bodies), _model(plane, region, body, lb, new_rules))
    try:
        with plane.store.transaction():
            plane.store.update_listener(body)
            rules.update_rule(plane, new_default)
    except BaseException:
        if rebind:
            _rebind(plane, _model(plane, region, body, lb, new_rules), _model(plane, region, current, lb, rule_bodies))
        raise
    config.publish(plane)
    return {"Listeners": [_render(body)]}


def _rebind(plane: ControlPlane, old: Listener, new: Listener) -> None:
    """Move a bound listener to ``new``'s port/protocol; on failure leave ``old`` bound and raise."""
    assert plane.lb is not None
    plane.lb.close_listener(old.arn)
    try:
        plane.lb.bind_listener(new)
    except ListenerBindError as exc:
        try:
            plane.lb.bind_listener(old)
        except ListenerBindError as again:
            config.log.error("listener %s could not be bound again on port %d: %s", old.arn, old.port, again.message)
        raise _bind_error(exc) from None


def delete_listener(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener", params.get("ListenerArn"))
    arn = body["ListenerArn"]
    rule_arns = [r["RuleArn"] for r in rules.listener_rules(plane, arn)]
    with plane.store.transaction():
        plane.store.delete_listener(arn)
        tags.delete_tags(plane, [arn, *rule_arns])
    config.close_listeners(plane, [arn])
    config.publish(plane)
    return {}
