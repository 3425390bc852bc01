"""``PortsideAgent.WatchRoutes``: the routing snapshot for load-balancer nodes (``portside lb``).

A node asks with the revision it serves and how long it may wait::

    {"sinceRevision": 123456789, "waitSeconds": 20}

and gets the whole snapshot (``control/elbv2/config.routing_snapshot``: listeners, rules,
target groups with their targets resolved to addresses, certificates with their keys, and
``revision``) at once when its revision differs from ``sinceRevision`` (or none was given),
otherwise when the snapshot changes within ``waitSeconds`` (at most ``MAX_WAIT_S``), otherwise
the unchanged snapshot when the wait ends. A revision is a digest of the snapshot's content
(``core/lb/snapshot.revision``): every replica, and a restarted server, answers the same one for
the same configuration. The snapshot spans every region, as the server's own proxy does.

What wakes a waiting poll: every published load balancer configuration (``plane.routes_watchers``,
called by ``control/elbv2/config.publish``) and every change of container instances (their
addresses resolve instance targets). A wake-up whose snapshot is unchanged waits on.

While nodes watch, a draining target's deregistration ends at its deadline, not when the server's
own proxy has nothing in flight to it (``nodes_watching``): the nodes' requests are not counted here.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from portside.control.elbv2.config import routing_snapshot
from portside.control.plane import ControlPlane
from portside.errors import InvalidParameterException

#: The longest a poll waits for a change (nodes ask for 20 s).
MAX_WAIT_S = 25.0
#: The ``plane.changed`` topic that may move instance targets' addresses.
INSTANCES_TOPIC = "instances"
#: A node that asked within this long may still have requests in flight to a draining target.
NODE_TTL_S = MAX_WAIT_S + 5.0


def nodes_watching(plane: ControlPlane) -> bool:
    """True while load-balancer nodes follow the snapshot (a poll waits now, or one came lately).

    The server's own proxy sees only its own requests in flight: while nodes serve too, a draining
    target is kept until its deregistration delay ends (``control/elbv2/config.attach``), since
    theirs cannot be counted from here.
    """
    return bool(plane.routes_watchers) or plane.clock() - plane.routes_seen <= NODE_TTL_S


async def watch_routes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    since = params.get("sinceRevision")
    wait_s = params.get("waitSeconds", 0)
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise InvalidParameterException(
            "sinceRevision must be an integer of 0 or more, or absent for the snapshot now."
        )
    if not isinstance(wait_s, (int, float)) or isinstance(wait_s, bool) or not 0 <= wait_s <= MAX_WAIT_S:
        raise InvalidParameterException(f"waitSeconds must be a number from 0 to {MAX_WAIT_S:g}.")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(wait_s)
    changed = asyncio.Event()

    def on_routes() -> None:
        changed.set()

    def on_topic(topic: str) -> None:
        if topic == INSTANCES_TOPIC:
            changed.set()

    address = params.get("address")
    if address is not None:
        try:
            address = str(ipaddress.ip_address(address)) if isinstance(address, str) else None
        except ValueError:
            address = None
        if address is None:
            raise InvalidParameterException("address must be the IP address the node reaches copies from.")
        plane.saw_lb_node(address)
    plane.routes_seen = plane.clock()
    plane.routes_watchers.append(on_routes)
    plane.watchers.append(on_topic)
    try:
        while True:
            changed.clear()
            document = routing_snapshot(plane)
            remaining = deadline - loop.time()
            if since is None or document["revision"] != since or remaining <= 0:
                return document
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass
    finally:
        plane.routes_seen = plane.clock()
        plane.routes_watchers.remove(on_routes)
        plane.watchers.remove(on_topic)
