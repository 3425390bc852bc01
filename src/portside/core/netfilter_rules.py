"""The values :mod:`portside.core.netfilter` works on: packets, rule references, verdicts,
and the compiled rules both parsers produce.

A compiled rule is a tuple of *matchers* plus an :class:`Action`. A matcher reads a
:class:`View` (the packet with its addresses as integers, built once per evaluation) and
answers ``True``, ``False`` or ``None`` (cannot be evaluated: an unknown match module, or a
packet field the caller left unknown). The rule matches when every matcher says ``True``;
one ``False`` settles it as not matching whatever the others say.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

HOOKS = ("input", "forward", "output")
PROTOCOLS = ("tcp", "udp")
CT_STATES = ("new", "established", "related", "invalid", "untracked")
BACKENDS = ("iptables", "nftables")
PROTOCOL_NUMBERS = {
    "all": 0, "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "esp": 50,
    "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136,
}

Tri = bool | None
Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection, as one filter hook sees it."""

    hook: str
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    orig_dst: str | None = None
    orig_dport: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    ct_state: str = "new"
    sport: int | None = None  # None = unknown (an ephemeral port): sport matches are uncertain

    def __post_init__(self) -> None:
        _one_of("hook", self.hook, HOOKS)
        _one_of("proto", self.proto, PROTOCOLS)
        _one_of("ct_state", self.ct_state, CT_STATES)
        for name in ("src", "dst", "orig_dst"):
            value = getattr(self, name)
            if value is not None:
                try:
                    ipaddress.IPv4Address(value)
                except ValueError:
                    raise ValueError(f"Packet.{name} has value {value!r}; expected an IPv4 address") from None
        for name in ("dport", "orig_dport", "sport"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 <= value <= 65535):
                raise ValueError(f"Packet.{name} has value {value!r}; expected a port 0-65535")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"Packet.{name} has value {value!r}; expected one of {', '.join(allowed)}")


@dataclass(frozen=True)
class RuleRef:
    backend: str
    table: str
    chain: str
    position: int
    text: str


@dataclass(frozen=True)
class Verdict:
    action: str
    decided_by: RuleRef | None
    policy: str | None
    uncertain: tuple[RuleRef, ...]


@dataclass(frozen=True, slots=True)
class View:
    """A :class:`Packet` in the form matchers read: integer addresses, protocol number."""

    src: int
    dst: int
    orig_dst: int
    dport: int
    orig_dport: int
    sport: int | None
    proto: int
    in_iface: str | None
    out_iface: str | None
    ct_state: str
    dnat: bool

    @classmethod
    def of(cls, packet: Packet) -> View:
        dst = ipv4_int(packet.dst)
        orig_dst = dst if packet.orig_dst is None else ipv4_int(packet.orig_dst)
        orig_dport = packet.dport if packet.orig_dport is None else packet.orig_dport
        # Interfaces that cannot exist at a hook are known to be empty, not unknown.
        in_iface = "" if packet.hook == "output" else packet.in_iface
        out_iface = "" if packet.hook == "input" else packet.out_iface
        return cls(
            src=ipv4_int(packet.src), dst=dst, orig_dst=orig_dst, dport=packet.dport,
            orig_dport=orig_dport, sport=packet.sport, proto=PROTOCOL_NUMBERS[packet.proto],
            in_iface=in_iface, out_iface=out_iface, ct_state=packet.ct_state,
            dnat=(orig_dst, orig_dport) != (dst, packet.dport),
        )


Matcher = Callable[[View], Tri]


def unknown(view: View) -> Tri:
    """The matcher for anything this module cannot evaluate."""
    return None


def negated(matcher: Matcher) -> Matcher:
    def match(view: View) -> Tri:
        result = matcher(view)
        return None if result is None else not result

    return match


@dataclass(frozen=True)
class Action:
    """What a rule does once it matches.

    ``kind`` is accept, drop, reject, return, continue (non-terminating statements only),
    jump or goto (``target`` names a chain of the same table), or vmap (``entries``: the
    first entry whose matchers all match gives the action).
    """

    kind: str
    target: str | None = None
    entries: tuple[tuple[tuple[Matcher, ...], Action], ...] = ()


CONTINUE = Action("continue")


@dataclass(frozen=True)
class Rule:
    ref: RuleRef
    matches: tuple[Matcher, ...]
    action: Action


@dataclass(frozen=True, eq=False)
class BaseChain:
    """A chain attached to a hook, with the chains of its table it can jump to."""

    table: str
    name: str
    hook: str
    priority: int
    policy: str  # as the backend writes it: "DROP" (iptables) or "drop" (nft)
    chains: Mapping[str, tuple[Rule, ...]]

    @property
    def policy_text(self) -> str:
        return f"{self.table} {self.name} policy {self.policy}"


@dataclass(frozen=True, eq=False)
class Ruleset:
    """One backend's rules: the base chains of the ip/inet filter hooks and what they reach."""

    backend: str
    base_chains: tuple[BaseChain, ...]

    def rules(self) -> Iterable[Rule]:
        seen: set[int] = set()
        for base in self.base_chains:
            if id(base.chains) not in seen:
                seen.add(id(base.chains))
                for chain in base.chains.values():
                    yield from chain


# -- primitives shared by both parsers ----------------------------------------------


def ipv4_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def ipv4_range(spec: str) -> tuple[int, int]:
    """``a.b.c.d``, ``a.b.c.d/len`` or ``a.b.c.d/netmask`` as an inclusive integer range."""
    network = ipaddress.IPv4Network(spec, strict=False)
    return int(network.network_address), int(network.broadcast_address)


def in_ranges(value: int, ranges: Ranges) -> bool:
    for low, high in ranges:
        if low <= value <= high:
            return True
    return False


def iface_test(patterns: Iterable[str], wildcard: str) -> Callable[[str], bool]:
    """Interface names; a trailing ``wildcard`` (iptables ``+``, nft ``*``) makes a prefix."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for pattern in patterns:
        if pattern.endswith(wildcard) and not pattern.endswith("\\" + wildcard):
            prefixes.append(pattern[: -len(wildcard)])
        else:
            exact.add(pattern.replace("\\" + wildcard, wildcard))
    prefix_tuple = tuple(prefixes)
    return lambda name: name in exact or name.startswith(prefix_tuple)
