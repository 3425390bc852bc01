"""Targets and listeners that would point portside's load balancer back into portside itself.

Theory of operation
-------------------
A target at this host's own address and the API's port turns a listener into a public door
to the API: requests forwarded there arrive from 127.0.0.1, the loopback peer the API trusts
most. A target at one of portside's own listener ports makes a forwarding loop, each pass
through the proxy adding a connection until the file-descriptor limit is hit. A listener on
the API's port would take the API's traffic (or fail to bind in a confusing way). All three
are refused with ``ValidationError`` naming the target or port.

"This host's own address" is decided by the caller (binding a socket to the address is the
honest test: it succeeds only for addresses of this host, loopback and ``0.0.0.0`` included);
:func:`is_always_local` answers the cases that need no socket. Everything here is pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["OwnEndpoints", "is_always_local", "listener_loop", "target_loop"]


@dataclass(frozen=True)
class OwnEndpoints:
    """What portside itself listens on here: the API (address, port) and listener port -> listener ARN."""

    api: tuple[str, int] | None
    listeners: Mapping[int, str] = field(default_factory=dict)

    def holds(self, port: int) -> bool:
        return (self.api is not None and port == self.api[1]) or port in self.listeners


def is_always_local(address: str) -> bool:
    """Loopback (127.0.0.0/8, ::1) and the unspecified address (which connects to this host)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def target_loop(target_id: str, address: str, port: int, address_is_local: bool, own: OwnEndpoints) -> str | None:
    """Why registering ``target_id`` (reached at ``address``) on ``port`` would loop into portside, or None."""
    if not address_is_local:
        return None
    named = target_id if target_id == address else f"{target_id} ({address})"
    if own.api is not None and port == own.api[1]:
        host, api_port = own.api
        return (
            f"Target {named} port {port} is the portside API's own address and port ({host}:{api_port}): "
            "a load balancer must not forward to the API"
        )
    if port in own.listeners:
        return (
            f"Target {named} port {port} is portside's own listener {own.listeners[port]}: "
            "a load balancer must not forward to itself"
        )
    return None


def listener_loop(port: int, own: OwnEndpoints, local_targets: Mapping[str, str]) -> str | None:
    """Why a listener on ``port`` would loop into portside, or None.

    ``local_targets``: target group ARN -> target id of registered targets on this host at ``port``.
    """
    if own.api is not None and port == own.api[1]:
        return f"Port {port} is the portside API's own port ({own.api[0]}:{own.api[1]}): a listener may not use it"
    for group, target_id in local_targets.items():
        return (
            f"Port {port} is the port of target {target_id} on this host in target group {group}: "
            "a listener there would forward to itself"
        )
    return None
