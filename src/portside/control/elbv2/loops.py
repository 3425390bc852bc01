"""Refuse targets and listeners that point the load balancer back into portside (core/lb/loops.py).

The I/O half: which ports portside holds (the API's address from the server, listeners from the
store) and whether an address is this host's own (``portside/local_address.py``).
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2.common import validation
from portside.control.plane import ControlPlane
from portside.core.lb.loops import OwnEndpoints, listener_loop, target_loop
from portside.local_address import is_local_address


def own_endpoints(plane: ControlPlane) -> OwnEndpoints:
    return OwnEndpoints(plane.api_address, plane.store.listener_ports())


def target_address(plane: ControlPlane, tg: dict[str, Any], target_id: str) -> str:
    """The address the proxy dials for a target: an instance target is this host's target_ip."""
    return plane.config.target_ip if tg["TargetType"] == "instance" else target_id


def check_targets(plane: ControlPlane, tg: dict[str, Any], wanted: list[tuple[str, int, str | None]]) -> None:
    """ValidationError naming the first target that would reach the API or a portside listener."""
    own = own_endpoints(plane)
    for target_id, port, _az in wanted:
        if not own.holds(port):
            continue  # no socket test for the ordinary case
        address = target_address(plane, tg, target_id)
        problem = target_loop(target_id, address, port, is_local_address(address), own)
        if problem is not None:
            raise validation(problem)


def check_listener_port(plane: ControlPlane, port: int) -> None:
    """ValidationError when a listener on ``port`` would be the API's port or forward to itself."""
    local: dict[str, str] = {}
    for group_arn, target_id, group in plane.store.serving_targets_on_port(port):
        if is_local_address(target_address(plane, group, target_id)):
            local.setdefault(group_arn, target_id)
    problem = listener_loop(port, own_endpoints(plane), local)
    if problem is not None:
        raise validation(problem)
