"""A load-balancer node's decisions: what to serve of a snapshot, and how to get there from now.

Theory of operation
-------------------
A ``portside lb`` node serves the configuration of a routing snapshot (``core/lb/snapshot.py``)
with a proxy of its own. Before it applies one, three pure steps turn the server's configuration
into the node's:

- ``for_node``: every listener binds where this node was told (``--bind-address``), or where the
  server would bind it (the scheme's address: internal 127.0.0.1, internet-facing 0.0.0.0).
- ``without_loops``: a target that would send the node's traffic into the API the node talks to
  (an API URL's address and port, or any local address at the API's port when the API is on
  this host) or into one of the node's own listeners (a local address at a listener's port) is
  left out, and named in the returned problems, which the node logs. ``core/lb/loops.py`` judges
  each target; the caller says which addresses are this host's (binding a socket is the test).
- ``listener_changes``: which bound listeners to close (gone, or moved to another port,
  protocol or address) and which to bind (new, or moved), closes first so a port handed from
  one listener to another is free when it is bound again.

Then the runtime's ``apply`` swaps the rules and target groups in at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from portside.core.lb.loops import OwnEndpoints, target_loop
from portside.core.lb.model import LbConfig, Listener

__all__ = ["ListenerChanges", "for_node", "listener_changes", "without_loops"]


@dataclass(frozen=True)
class ListenerChanges:
    close: tuple[str, ...] = ()  # ARNs of bound listeners to close, before any bind
    bind: tuple[Listener, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.close and not self.bind


def for_node(config: LbConfig, bind_address: str | None) -> LbConfig:
    """``config`` with every listener bound at ``bind_address`` (None: where the server binds it)."""
    if bind_address is None:
        return config
    listeners = tuple(dataclasses.replace(listener, bind_host=bind_address) for listener in config.listeners)
    return LbConfig(listeners=listeners, target_groups=config.target_groups)


def without_loops(
    config: LbConfig, apis: Sequence[tuple[str, int]], local_addresses: Collection[str]
) -> tuple[LbConfig, list[str]]:
    """``config`` without targets that forward into an API in ``apis`` or a listener of ``config``.

    ``local_addresses``: the target addresses (and API addresses) that are this host's.
    Returns the configuration to serve and one problem per target left out.
    """
    listeners = {listener.port: listener.arn for listener in config.listeners}
    problems: list[str] = []
    groups = {}
    for arn, group in config.target_groups.items():
        kept = []
        for target in group.targets:
            problem = _loop(target.id, target.address, target.port, apis, listeners, local_addresses)
            if problem is None:
                kept.append(target)
            else:
                problems.append(f"target group {group.name}: {problem}; left out on this node")
        groups[arn] = (
            group if len(kept) == len(group.targets) else dataclasses.replace(group, targets=tuple(kept))
        )
    return LbConfig(listeners=config.listeners, target_groups=groups), problems


def _loop(
    target_id: str,
    address: str,
    port: int,
    apis: Sequence[tuple[str, int]],
    listeners: Mapping[int, str],
    local: Collection[str],
) -> str | None:
    for api_host, api_port in apis:
        # The API is reached at its own address, or at any local one when it runs on this host.
        same_host = address == api_host or (address in local and api_host in local)
        problem = target_loop(target_id, address, port, same_host, OwnEndpoints((api_host, api_port)))
        if problem is not None:
            return problem
    return target_loop(target_id, address, port, address in local, OwnEndpoints(None, listeners))


def listener_changes(bound: Mapping[str, Listener], wanted: Sequence[Listener]) -> ListenerChanges:
    """How to get from the ``bound`` listeners (ARN -> listener) to the ``wanted`` ones."""
    wanted_by_arn = {listener.arn: listener for listener in wanted}
    close = [
        arn
        for arn, listener in bound.items()
        if arn not in wanted_by_arn or _socket(listener) != _socket(wanted_by_arn[arn])
    ]
    bind = [listener for listener in wanted if listener.arn not in bound or listener.arn in close]
    return ListenerChanges(close=tuple(close), bind=tuple(bind))


def _socket(listener: Listener) -> tuple[str, int, str]:
    """What a bound socket is: a change here means closing it and binding afresh."""
    return listener.bind_host, listener.port, listener.protocol
