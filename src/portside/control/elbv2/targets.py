"""RegisterTargets, DeregisterTargets, DescribeTargetHealth, and the end of draining.

A target is (Id, Port), Port defaulting to the target group's. ``instance`` targets name a
container instance by its ``ec2InstanceId`` (this host: ``i-`` + 17 hex digits) and resolve to
the server's ``target_ip``; the same instance can be registered many times with different
ports (dynamic host ports). ``ip`` targets are any IPv4 or IPv6 address, loopback included,
except this host's own addresses at the API's port or a portside listener's port
(``ValidationError``: the load balancer must not forward into portside, see ``core/lb/loops.py``).

Deregistration drains: the target stays in ``elb_targets`` as draining with
``drain_deadline = now + deregistration_delay`` and the runtime stops sending it new requests.
The row goes away when the runtime reports the target drained (no requests in flight, or the
deadline passed: ``on_target_drained``) or, as a safety net, when :func:`sweep` finds its
deadline passed (run it periodically: :func:`run_sweeper`). Registering a draining target again
makes it registered again.

DescribeTargetHealth: draining rows answer ``draining``; targets of a group no listener rule
forwards to answer ``unused`` / ``Target.NotInUse``; the others answer what the runtime's health
checks say (``initial`` until the runtime knows the target). A target in the ``Targets`` filter
that is not registered answers ``unused`` / ``Target.NotRegistered`` as on AWS, whether or not
its instance id is a container instance (the ``target_deregistered`` waiter counts it as
success); only a malformed IP address in an ``ip`` group's filter is ``InvalidTarget``.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from portside.control import rounds
from portside.control.elbv2 import config, loops
from portside.control.elbv2.common import fail, require
from portside.control.elbv2.target_groups import attributes, health_check, usage
from portside.control.plane import ControlPlane
from portside.core.lb.runtime import HealthView

log = logging.getLogger("portside.elbv2")

MAX_TARGETS_PER_GROUP = 1000
SWEEP_INTERVAL_S = 1.0

_NOT_REGISTERED = HealthView("unused", "Target.NotRegistered", "Target is not registered to the target group")
_NOT_IN_USE = HealthView(
    "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
)
_DRAINING = HealthView("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
_REGISTERING = HealthView("initial", "Elb.RegistrationInProgress", "Target registration is in progress")


def known_instance_ids(plane: ControlPlane, region: str) -> set[str]:
    """``ec2InstanceId`` of every ACTIVE (or DRAINING) container instance registered in ``region``."""
    ids = set()
    for instance in plane.store.container_instances_in_region(region):
        if instance.get("status") in ("ACTIVE", "DRAINING") and instance.get("ec2InstanceId"):
            ids.add(instance["ec2InstanceId"])
    return ids


def _quoted(ids: list[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)


def _targets(tg: dict[str, Any], items: Any) -> list[tuple[str, int, str | None]]:
    """(id, port, availability zone) per requested target, the group's port by default, once each."""
    out: list[tuple[str, int, str | None]] = []
    seen: set[tuple[str, int]] = set()
    for item in items or []:
        target_id, port = item["Id"], item.get("Port") or tg["Port"]
        if (target_id, port) not in seen:
            seen.add((target_id, port))
            out.append((target_id, port, item.get("AvailabilityZone")))
    return out


def _check_ids(plane: ControlPlane, region: str, tg: dict[str, Any], ids: list[str], registering: bool) -> None:
    """InvalidTarget unless every id suits the group's target type (for DescribeTargetHealth, any
    instance id does: one that is no container instance is simply not registered)."""
    if tg["TargetType"] == "instance":
        if not registering:
            return
        known = known_instance_ids(plane, region)
        unknown = list(dict.fromkeys(i for i in ids if i not in known))
        if unknown:
            raise fail(
                "InvalidTarget",
                f"The following targets are not in a running state and cannot be registered: {_quoted(unknown)}",
            )
        return
    bad = []
    for target_id in ids:
        try:
            ipaddress.ip_address(target_id)
        except ValueError:
            bad.append(target_id)
    if bad:
        raise fail("InvalidTarget", f"The following targets are not valid IP addresses: {_quoted(list(dict.fromkeys(bad)))}")


def _rows(plane: ControlPlane, tg_arn: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (tid, port): {"Id": tid, "Port": port, "AvailabilityZone": az, "draining": draining, "deadline": deadline}
        for tid, port, az, draining, deadline in plane.store.targets_of(tg_arn)
    }


# -- API operations


def register_targets(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    tg = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    wanted = _targets(tg, params.get("Targets"))
    _check_ids(plane, region, tg, [t[0] for t in wanted], registering=True)
    loops.check_targets(plane, tg, wanted)
    current = _rows(plane, tg["TargetGroupArn"])
    added = sum(1 for tid, port, _ in wanted if (tid, port) not in current)
    if len(current) + added > MAX_TARGETS_PER_GROUP:
        raise fail("TooManyTargets", f"You've reached the limit on the number of targets per target group ({MAX_TARGETS_PER_GROUP})")
    now = plane.clock()
    changed = False
    with plane.store.transaction():
        for tid, port, az in wanted:
            row = current.get((tid, port))
            if row is None:
                plane.store.add_target(region, tg["TargetGroupArn"], tid, port, az, now)
                changed = True
            elif row["draining"] or (az is not None and az != row["AvailabilityZone"]):
                plane.store.reregister_target(tg["TargetGroupArn"], tid, port, az)
                changed = True
    if changed:
        config.publish(plane)
    return {}


def deregister_targets(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    tg = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    wanted = _targets(tg, params.get("Targets"))
    current = _rows(plane, tg["TargetGroupArn"])
    delay = attributes(tg).deregistration_delay_s
    deadline = plane.clock() + delay
    changed = False
    with plane.store.transaction():
        for tid, port, _ in wanted:
            row = current.get((tid, port))
            if row is None or row["draining"]:
                continue  # deregistering an unknown (or already draining) target succeeds
            if delay <= 0:
                plane.store.delete_target(tg["TargetGroupArn"], tid, port)
            else:
                plane.store.drain_target(tg["TargetGroupArn"], tid, port, deadline)
            changed = True
    if changed:
        config.publish(plane)
    return {}


def describe_target_health(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    tg = require(plane, region, "targetgroup", params.get("TargetGroupArn"))
    rows = _rows(plane, tg["TargetGroupArn"])
    requested = params.get("Targets")
    if requested:
        wanted = _targets(tg, requested)
        _check_ids(plane, region, tg, [t[0] for t in wanted], registering=False)
        keys = [(tid, port) for tid, port, _ in wanted]
    else:
        keys = list(rows)
    in_use = bool(usage(plane, region).get(tg["TargetGroupArn"]))
    check = health_check(tg)
    descriptions = []
    for tid, port in keys:
        row = rows.get((tid, port))
        target: dict[str, Any] = {"Id": tid, "Port": port}
        if row is not None and row["AvailabilityZone"]:
            target["AvailabilityZone"] = row["AvailabilityZone"]
        view = _health(plane, tg["TargetGroupArn"], row, in_use)
        health: dict[str, Any] = {"State": view.state}
        if view.state != "healthy":
            health.update({k: v for k, v in (("Reason", view.reason), ("Description", view.description)) if v})
        descriptions.append(
            {
                "Target": target,
                "HealthCheckPort": str(port) if check.port == "traffic-port" else check.port,
                "TargetHealth": health,
            }
        )
    return {"TargetHealthDescriptions": descriptions}


def _health(plane: ControlPlane, tg_arn: str, row: dict[str, Any] | None, in_use: bool) -> HealthView:
    if row is None:
        return _NOT_REGISTERED
    if row["draining"]:
        return _DRAINING
    if not in_use:
        return _NOT_IN_USE
    if plane.lb is None:
        return _REGISTERING
    view = plane.lb.target_health(tg_arn, row["Id"], row["Port"])
    if view.state == "unused" and view.reason == "Target.NotRegistered":
        return _REGISTERING  # stored, not yet applied in the runtime
    if view.state == "draining":
        return _DRAINING
    return view


# -- the end of draining


def on_target_drained(plane: ControlPlane, tg_arn: str, target_id: str, port: int) -> None:
    """The runtime's drained callback: a draining target is done; forget it (if still draining)."""
    with plane.store.transaction():
        forgotten = plane.store.delete_drained_target(tg_arn, target_id, port)
    if forgotten:
        config.publish(plane)
        plane.changed("targets")


def sweep(plane: ControlPlane, now: float | None = None) -> int:
    """Forget draining targets whose deadline has passed; publish if any. Returns how many."""
    when = plane.clock() if now is None else now
    with plane.store.transaction():
        forgotten = plane.store.delete_targets_drained_by(when)
    if forgotten:
        config.publish(plane)
        plane.changed("targets")
    return forgotten


async def run_sweeper(plane: ControlPlane, interval_s: float = SWEEP_INTERVAL_S) -> None:
    """Run :func:`sweep` every ``interval_s`` seconds until cancelled."""
    # sweep is looked up each round (a test replaces it)
    await rounds.every(interval_s, lambda: sweep(plane), "sweeping drained targets", log)
