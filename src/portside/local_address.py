"""Whether an address is one of this host's: binding a socket to it succeeds only then.

Used wherever portside must not forward to itself: the control plane's listener and target checks
(``control/elbv2/loops.py``) and a load-balancer node's (``lb_node.py``).
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from portside.core.lb.loops import is_always_local


def is_local_address(address: str) -> bool:
    """True when ``address`` is one of this host's (binding a socket to it succeeds)."""
    if is_always_local(address):
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        return exc.errno != errno.EADDRNOTAVAIL  # any other failure: assume ours, refuse rather than loop
    return True
