"""From stored ELBv2 records to the data plane: ``build_config``, ``publish``, ``restore``.

The runtime (``plane.lb``, an ``LbRuntime``) serves every region at once, and listener ports are
host-global, so one ``LbConfig`` is built across all regions. It is pushed after every
successful write (``publish``: ``runtime.apply(build_config(plane))``) and once at server start
(``restore``: bind every stored listener, then apply).

How the control plane calls the runtime, and when:

- ``bind_listener(listener)``: CreateListener, before anything is stored (a ListenerBindError
  means nothing is stored); ModifyListener when the port or protocol changes (after
  ``close_listener`` of the old socket; on failure the old one is bound again); ``restore``.
- ``close_listener(arn)``: DeleteListener and DeleteLoadBalancer, after the commit; ModifyListener
  before rebinding; a failed commit after a bind.
- ``apply(config)``: after every committed write (``publish``) and at the end of ``restore``.
- ``target_health(arn, id, port)``: DescribeTargetHealth, for registered targets of a group in use.
- ``set_drained_callback(cb)``: ``attach``; the callback forgets the drained target and publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from portside.control.plane import ControlPlane
from portside.control.store.database import StoreUnavailable
from portside.core.lb import action_settings, rule_settings, snapshot
from portside.core.lb.errors import ElbError
from portside.core.lb.model import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_RULE_PRIORITY,
    DEFAULT_SSL_POLICY,
    Action,
    Certificate,
    Condition,
    HealthCheck,
    LbConfig,
    Listener,
    Rule,
    Target,
    TargetGroup,
    TargetGroupAttributes,
)
from portside.core.lb.runtime import LbRuntime, ListenerBindError
from portside.errors import PortsideError

log = logging.getLogger("portside.elbv2")

IDLE_TIMEOUT_KEY = "idle_timeout.timeout_seconds"
SERVER_HEADER_KEY = "routing.http.response.server.enabled"  # a listener attribute (listener_attributes.py)


# --------------------------------------------------------------------------- records -> model


def bind_host(lb: dict[str, Any]) -> str:
    """Where a load balancer's listeners bind: loopback when internal, every IPv4 address otherwise."""
    return "127.0.0.1" if lb.get("Scheme") == "internal" else "0.0.0.0"


def model_actions(actions: list[Mapping[str, Any]]) -> tuple[Action, ...]:
    """Stored (already validated) API-shaped actions as model actions, in ``Order``."""
    return tuple(sorted(action_settings.actions_from_params(actions), key=lambda a: a.order))


def model_conditions(conditions: list[Mapping[str, Any]]) -> tuple[Condition, ...]:
    return tuple(rule_settings.conditions_from_params(conditions))


def rule_model(body: dict[str, Any]) -> Rule:
    default = bool(body.get("IsDefault"))
    return Rule(
        arn=body["RuleArn"],
        priority=DEFAULT_RULE_PRIORITY if default else int(body["Priority"]),
        conditions=() if default else model_conditions(body.get("Conditions") or []),
        actions=model_actions(body.get("Actions") or []),
        is_default=default,
    )


def _rule_models(bodies: list[dict[str, Any]]) -> tuple[Rule, ...]:
    """Rules by priority, the default rule last. A stored numbered rule the validator refuses
    today (it cannot happen unless validation changed between versions) is logged and left out
    rather than taking every listener down."""
    ordered = sorted(bodies, key=lambda r: (bool(r.get("IsDefault")), 0 if r.get("IsDefault") else int(r["Priority"])))
    out = []
    for body in ordered:
        try:
            out.append(rule_model(body))
        except ElbError as exc:
            if body.get("IsDefault"):
                raise
            log.error("rule %s is left out of the configuration: %s", body["RuleArn"], exc.message)
    return tuple(out)


def certificate_model(body: dict[str, Any]) -> Certificate:
    return Certificate(arn=body["CertificateArn"], cert_path=body["_cert_path"], key_path=body["_key_path"])


def listener_model(
    listener: dict[str, Any],
    lb: dict[str, Any],
    rules: list[dict[str, Any]],
    certificates: dict[str, dict[str, Any]],
) -> Listener:
    """The model of one stored listener; ``rules`` are its rule records (default included)."""
    arns = [c["CertificateArn"] for c in listener.get("Certificates") or []]
    arns += listener.get("_sniCertificates") or []  # served by SNI (AddListenerCertificates)
    certs = tuple(certificate_model(certificates[arn]) for arn in arns if arn in certificates)
    return Listener(
        arn=listener["ListenerArn"],
        load_balancer_arn=listener["LoadBalancerArn"],
        protocol=listener["Protocol"],
        port=int(listener["Port"]),
        bind_host=bind_host(lb),
        rules=_rule_models(rules),
        certificates=certs,
        idle_timeout_s=int(lb.get("_attributes", {}).get(IDLE_TIMEOUT_KEY, DEFAULT_IDLE_TIMEOUT_S)),
        ssl_policy=listener.get("SslPolicy") or DEFAULT_SSL_POLICY,
        server_header=(listener.get("_attributes") or {}).get(SERVER_HEADER_KEY, "true") == "true",
    )


def target_group_model(plane: ControlPlane, body: dict[str, Any], where: InstanceAddresses | None = None) -> TargetGroup:
    rows = plane.store.targets_of(body["TargetGroupArn"])
    instance = body["TargetType"] == "instance"
    where = where or instance_addresses(plane)
    addresses, local_id, endpoints = where
    targets = []
    for tid, port, _zone, draining, deadline in rows:
        connect = endpoints.get(int(port)) if instance and tid == local_id else None
        targets.append(
            Target(
                id=tid,
                port=int(port),
                address=addresses.get(tid, plane.config.target_ip) if instance else tid,
                connect_address=connect[0] if connect else None,
                connect_port=connect[1] if connect else None,
                draining=bool(draining),
                drain_deadline=deadline if draining else None,
            )
        )
    return TargetGroup(
        arn=body["TargetGroupArn"],
        name=body["TargetGroupName"],
        protocol=body["Protocol"],
        port=int(body["Port"]),
        target_type=body["TargetType"],
        health_check=HealthCheck(**body["_health_check"]),
        attributes=TargetGroupAttributes(**body["_attributes"]),
        targets=tuple(targets),
    )


def _certificates(plane: ControlPlane, region: str | None) -> dict[str, dict[str, Any]]:
    return {c["CertificateArn"]: c for c in plane.store.certificates(region)}


def listener_models(plane: ControlPlane, region: str | None = None) -> list[Listener]:
    """Every stored listener (of ``region``, or of all regions) as a model, in creation order."""
    lbs = {b["LoadBalancerArn"]: b for b in plane.store.load_balancers(region)}
    rules: dict[str, list[dict[str, Any]]] = {}
    for listener_arn, body in plane.store.rules_by_listener(region):
        rules.setdefault(listener_arn, []).append(body)
    certificates = _certificates(plane, region)
    out = []
    for listener in plane.store.listeners(region):
        lb = lbs.get(listener["LoadBalancerArn"])
        if lb is not None:
            out.append(listener_model(listener, lb, rules.get(listener["ListenerArn"], []), certificates))
    return out


def build_config(plane: ControlPlane, region: str | None = None) -> LbConfig:
    """The whole load balancer configuration (of one region, or of every region when None).

    Listeners carry their rules sorted by priority, the default rule last; every target group
    carries its registered and draining targets resolved to addresses.
    """
    where = instance_addresses(plane)
    groups = {b["TargetGroupArn"]: target_group_model(plane, b, where) for b in plane.store.target_groups(region)}
    return LbConfig(listeners=tuple(listener_models(plane, region)), target_groups=groups)


def routing_snapshot(plane: ControlPlane) -> dict[str, Any]:
    """What a load-balancer node on another host serves (``portside lb``, PortsideAgent.WatchRoutes).

    The configuration the server's own proxy gets (every region), with every target reached at its
    address and port, the PEM text of every certificate a listener serves, and the revision.
    PortsideError naming the certificate when its files cannot be read.
    """
    config = snapshot.without_local_paths(build_config(plane))
    used = {c.arn: c for listener in config.listeners for c in listener.certificates}
    document = snapshot.config_to_json(config)
    document["certificates"] = {arn: _pem_pair(cert) for arn, cert in sorted(used.items())}
    document["revision"] = snapshot.revision(document)
    return document


def _pem_pair(cert: Certificate) -> dict[str, str]:
    try:
        with open(cert.cert_path, encoding="ascii") as crt, open(cert.key_path, encoding="ascii") as key:
            return {"certificate": crt.read(), "privateKey": key.read()}
    except (OSError, ValueError) as exc:
        raise PortsideError(f"certificate {cert.arn}: its stored files cannot be read: {exc}") from exc


# --------------------------------------------------------------------------- pushing to the runtime


def publish(plane: ControlPlane) -> None:
    """Push the stored configuration (all regions) to the runtime, if one is attached.

    Called after every committed write. The write is already durable, so a runtime failure is
    logged, not raised: the next publish (or restart) applies the stored state again. Wakes the
    load-balancer nodes' WatchRoutes polls too, and logs the change for the other replicas, which
    ``follow`` it.
    """
    if plane.replicated:
        try:
            plane.store.record_change("routes")
        except StoreUnavailable:
            log.warning("the store is unavailable: other replicas hear of this routing change at their next resync")
    publish_local(plane)


def follow(plane: ControlPlane) -> None:
    """Another replica changed the routing: bind what listeners are new here, then apply it all."""
    bind_stored_listeners(plane)
    publish_local(plane)


def publish_local(plane: ControlPlane) -> None:
    """Apply the stored configuration to this process's runtime and wake this process's route watches."""
    for watcher in list(plane.routes_watchers):
        watcher()
    runtime = plane.lb
    if runtime is None:
        return
    try:
        runtime.apply(build_config(plane))
    except Exception:
        log.exception("applying the load balancer configuration failed")


def close_listeners(plane: ControlPlane, arns: list[str]) -> None:
    if plane.lb is None:
        return
    for arn in arns:
        try:
            plane.lb.close_listener(arn)
        except Exception:
            log.exception("closing listener %s failed", arn)


def attach(plane: ControlPlane, runtime: LbRuntime) -> None:
    """Make ``runtime`` the plane's data plane and route its drained callback to the store."""
    from portside.control.elbv2 import targets

    plane.lb = runtime

    def drained(target_group_arn: str, target_id: str, port: int) -> None:
        from portside.control.routes_snapshot import nodes_watching

        if nodes_watching(plane) and not _drain_deadline_passed(plane, target_group_arn, target_id, port):
            return  # load-balancer nodes may still have requests in flight: the sweep ends it at the deadline
        try:
            targets.on_target_drained(plane, target_group_arn, target_id, port)
        except Exception:
            log.exception("completing the deregistration of %s:%s failed", target_id, port)

    runtime.set_drained_callback(drained)


def _drain_deadline_passed(plane: ControlPlane, group_arn: str, target_id: str, port: int) -> bool:
    for tid, target_port, _zone, draining, deadline in plane.store.targets_of(group_arn):
        if (tid, int(target_port)) == (target_id, port):
            return not draining or deadline is None or deadline <= plane.clock()
    return True


def restore(plane: ControlPlane, runtime: LbRuntime | None = None) -> list[str]:
    """Re-feed the runtime at server start: bind every stored listener, then apply the config.

    ``runtime``, when given, is attached first (see :func:`attach`). Draining targets whose
    deadline passed while the server was down are forgotten. A listener whose port cannot be
    bound is logged and skipped (it stays stored; ModifyListener or a restart can fix it).
    Returns the ARNs of the listeners that could not be bound.
    """
    from portside.control.elbv2 import targets

    if runtime is not None:
        attach(plane, runtime)
    if plane.lb is None:
        return []
    targets.sweep(plane)
    failed = bind_stored_listeners(plane)
    publish(plane)
    return failed


def bind_stored_listeners(plane: ControlPlane) -> list[str]:
    """Bind every stored listener the runtime has not bound yet; the ARNs of those that failed."""
    if plane.lb is None:
        return []
    failed = []
    for listener in listener_models(plane):
        try:
            plane.lb.bind_listener(listener)
        except ListenerBindError as exc:
            failed.append(listener.arn)
            # Said once per listener: a replica tries again at each routing change of the others.
            level = logging.DEBUG if listener.arn in plane.unbound_listeners else logging.ERROR
            log.log(level, "listener %s (port %d) cannot be bound: %s", listener.arn, listener.port, exc.message)
        except Exception:  # a broken listener must not keep the server (and the others) down
            failed.append(listener.arn)
            log.exception("listener %s (port %d) cannot be bound", listener.arn, listener.port)
        else:
            if listener.arn in plane.unbound_listeners:
                log.warning("listener %s (port %d) is bound now", listener.arn, listener.port)
    plane.unbound_listeners = set(failed)
    return failed


#: (ec2InstanceId -> address, this host's instance id, host port -> this host's direct endpoint)
InstanceAddresses = tuple[dict[str, str], str | None, dict[int, tuple[str, int]]]


def instance_addresses(plane: ControlPlane) -> InstanceAddresses:
    """Where each registered instance's copies are reached (its agent's address, in every region),
    this host's instance id, and the direct endpoints of this host's copies (``local_endpoints``).

    The server's own host is reached at ``config.target_ip``, whatever its agent registered.
    """
    addresses: dict[str, str] = {}
    local_id = None
    for body in plane.store.all_container_instances():
        if body["containerInstanceArn"] == plane.instance_arn:
            local_id = body["ec2InstanceId"]
            addresses[local_id] = plane.config.target_ip
        elif body.get("_address"):
            addresses.setdefault(body["ec2InstanceId"], body["_address"])
    endpoints = local_endpoints(plane) if plane.config.direct_routing and local_id else {}
    return addresses, local_id, endpoints


def local_endpoints(plane: ControlPlane) -> dict[int, tuple[str, int]]:
    """host port -> (bridge address, container port) of bridge-mode copies on this host, as their agent reported.

    Draining tasks included: their targets keep the path they had.
    """
    out: dict[int, tuple[str, int]] = {}
    for task in plane.store.live_tasks_on(plane.instance_arn):
        if task.network_mode != "bridge":
            continue
        for container in task.containers:
            if container.bridge_ip is None:
                continue
            for plan in container.ports:
                if plan.host_port and plan.protocol == "tcp" and plan.container_port:
                    out.setdefault(plan.host_port, (container.bridge_ip, plan.container_port))
    return out
