"""Compile ``nft -j list ruleset`` JSON (families ip and inet) into netfilter rules.

A rule's ``expr`` list runs in order: ``match`` expressions must all hold, the first verdict
(accept, drop, reject, jump, goto, return, continue, vmap) ends the rule, and every other
statement (counter, log, mangle, ...) continues. A match is ``left op right``: the left
side reads one packet field (:func:`_left`), the right side is a value, prefix, range,
anonymous set, flag list or ``@named`` set, compiled to a membership test (:func:`_right`).

``tcp dport``/``udp dport`` carry nft's implicit protocol dependency: a UDP packet never
matches ``tcp dport != 80``. Expressions outside this vocabulary (``xt``, ``fib``,
``meta mark``, ``limit``, concatenations, raw payloads) become "unknown" matchers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from portside.core.netfilter_rules import (
    CONTINUE,
    PROTOCOL_NUMBERS,
    Action,
    BaseChain,
    Matcher,
    Rule,
    RuleRef,
    Ruleset,
    Tri,
    View,
    iface_test,
    in_ranges,
    ipv4_int,
    unknown,
)

__all__ = ["parse_nft_json"]

FAMILIES = ("ip", "inet")
IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
CHAIN_TYPES = ("filter", "route")
HOOKS = ("input", "forward", "output")
PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
VERDICTS = ("accept", "drop", "reject", "return", "continue")
UNKNOWN_STATEMENTS = frozenset({"limit", "quota", "ct count", "meter", "synproxy"})  # matches in effect
_ABSENT = object()  # the field is not in this packet (tcp dport of a UDP packet): never matches
_COMPARE = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_L4_ABSENT = frozenset({
    "ip6", "icmp", "icmpv6", "igmp", "sctp", "dccp", "esp", "ah", "comp", "udplite", "arp",
})

Getter = Callable[[View], object]
Ctx = dict[str, list[Any]]  # the table's named sets and maps: name -> elements


def parse_nft_json(
    data: Mapping[str, Any], text: str | None = None, *, skip_iptables_tables: bool = True
) -> Ruleset:
    """Compile the filter base chains of ``nft -j list ruleset``.

    ``text`` (``nft -a list ruleset``) gives each rule its human text by handle.
    ``skip_iptables_tables`` skips iptables-nft's own tables (ip filter, ip nat, ...).
    Raises ``ValueError`` naming the object that is malformed.
    """
    match data:
        case {"nftables": list() as items}:
            pass
        case _:
            raise ValueError("nft JSON: expected an object with an 'nftables' list (`nft -j list ruleset`)")
    texts = _rule_texts(text) if text is not None else {}
    chains: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    rules: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    named: dict[tuple[str, str], Ctx] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ValueError(f"nft JSON: item {index} is not an object with one key")
        ((kind, body),) = item.items()
        if kind not in ("chain", "rule", "set", "map"):
            continue
        family, table, name = _names(kind, body, index)
        if family not in FAMILIES or (skip_iptables_tables and family == "ip" and table in IPTABLES_TABLES):
            continue
        if kind == "chain":
            chains.setdefault((family, table), {})[name] = body
        elif kind == "rule":
            rules.setdefault((family, table, name), []).append(body)
        else:
            named.setdefault((family, table), {})["@" + name] = list(body.get("elem", []))
    bases: list[BaseChain] = []
    for (family, table), table_chains in chains.items():
        label = f"{family} {table}"
        ctx = named.get((family, table), {})
        compiled = MappingProxyType({
            chain: tuple(
                _compile_rule(rule, label, chain, set(table_chains), ctx, texts.get((family, table, chain)))
                for rule in rules.get((family, table, chain), [])
            )
            for chain in table_chains
        })
        for chain, body in table_chains.items():
            if body.get("type") in CHAIN_TYPES and body.get("hook") in HOOKS:
                priority = _priority(body.get("prio", 0), f"chain {label} {chain}")
                policy = body.get("policy", "accept")
                bases.append(BaseChain(label, chain, body["hook"], priority, policy, compiled))
    for family, table, chain in rules:
        if chain not in chains.get((family, table), {}):
            raise ValueError(f"nft JSON: rules of chain {family} {table} {chain}, which is not declared")
    return Ruleset("nftables", tuple(bases))


def _names(kind: str, body: Any, index: int) -> tuple[str, str, str]:
    """The family, table and name (for a rule: its chain's) of an object of the listing."""
    keys = ("family", "table", "chain" if kind == "rule" else "name")
    match [body.get(key) for key in keys] if isinstance(body, Mapping) else []:
        case [str(family), str(table), str(name)]:
            return family, table, name
    raise ValueError(f"nft JSON: {kind} at item {index} lacks 'family', 'table' or its name")


def _priority(value: Any, where: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value in PRIORITY_NAMES:
        return PRIORITY_NAMES[value]
    raise ValueError(f"nft JSON: {where} has priority {value!r}; expected an integer")


def _compile_rule(
    body: Mapping[str, Any], table: str, chain: str, chains: set[str], ctx: Ctx, texts: dict[int, str] | None
) -> Rule:
    handle, exprs = body.get("handle"), body.get("expr")
    where = f"nft rule {table} {chain} handle {handle}"
    if not isinstance(exprs, list) or not isinstance(handle, int) or handle < 0:
        raise ValueError(f"{where}: expected an integer 'handle' and an 'expr' list")
    matches: list[Matcher] = []
    action = CONTINUE
    for statement in exprs:
        if not isinstance(statement, Mapping) or len(statement) != 1:
            raise ValueError(f"{where}: statement {statement!r} is not an object with one key")
        ((key, arg),) = statement.items()
        if key == "match":
            matches.append(_match(arg, ctx, where))
        elif key == "xt" and isinstance(arg, Mapping) and arg.get("type") == "target":
            verdict = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject"}.get(str(arg.get("name")))
            action = Action(verdict) if verdict else CONTINUE  # LOG, MARK, ...: non-terminating
        elif key == "xt" or key in UNKNOWN_STATEMENTS:
            matches.append(unknown)
        elif key == "vmap":
            if not isinstance(arg, Mapping) or "key" not in arg or "data" not in arg:
                raise ValueError(f"{where}: vmap needs 'key' and 'data'")
            entries = []
            for element in _elements(arg["data"], ctx, where) or []:
                if not (isinstance(element, list) and len(element) == 2):
                    raise ValueError(f"{where}: vmap element {element!r} is not [key, verdict]")
                entries.append(((_match({"op": "==", "left": arg["key"], "right": element[0]}, ctx, where),),
                                _verdict(element[1], chains, where)))
            action = Action("vmap", entries=tuple(entries))
        elif key in VERDICTS or key in ("jump", "goto"):
            action = _verdict(statement, chains, where)
        if action is not CONTINUE:
            break
    text = (texts or {}).get(handle) or render(exprs, body.get("comment"))
    return Rule(RuleRef("nftables", table, chain, handle, text), tuple(matches), action)


def _verdict(value: Any, chains: set[str], where: str) -> Action:
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, arg),) = value.items()
        if key in VERDICTS:
            return Action(key)
        if key in ("jump", "goto"):
            target = arg.get("target") if isinstance(arg, Mapping) else None
            if target not in chains:
                raise ValueError(f"{where}: {key} to {target!r}, which is not a chain of this table")
            return Action(key, target)
    raise ValueError(f"{where}: {value!r} is not a verdict")


def _match(arg: Any, ctx: Ctx, where: str) -> Matcher:
    if not isinstance(arg, Mapping) or "left" not in arg or "right" not in arg:
        raise ValueError(f"{where}: match {arg!r} lacks 'left' or 'right'")
    op, right = arg.get("op", "=="), arg["right"]
    found = _left(arg["left"])
    if found is None:
        return unknown
    kind, get = found
    if op in _COMPARE and isinstance(right, int) and kind in ("port", "proto"):
        compare = _COMPARE[op]
        return _matcher(get, lambda value: compare(value, right), True)
    test = _right(kind, right, ctx, where)
    if test is None or op not in ("==", "in", "!="):
        return unknown
    return _matcher(get, test, op != "!=")


def _matcher(get: Getter, test: Callable[[Any], bool], positive: bool) -> Matcher:
    def match(view: View) -> Tri:
        value = get(view)
        if value is _ABSENT:
            return False
        if value is None:
            return None
        return test(value) is positive

    return match


def _field(kind: str, attr: str) -> tuple[str, Getter]:
    return kind, lambda view: getattr(view, attr)


def _constant(kind: str, value: object) -> tuple[str, Getter]:
    return kind, lambda view: value


# What each left-hand expression reads: (kind of value, getter).
_IP_FIELDS = {
    "saddr": _field("addr", "src"), "daddr": _field("addr", "dst"), "protocol": _field("proto", "proto"),
}
_META_KEYS = {
    "l4proto": _field("proto", "proto"),
    "iifname": _field("ifname", "in_iface"), "iif": _field("ifname", "in_iface"),
    "oifname": _field("ifname", "out_iface"), "oif": _field("ifname", "out_iface"),
    "nfproto": _constant("sym", "ipv4"), "protocol": _constant("sym", "ip"),
}
_CT_KEYS: dict[str, tuple[str, Getter]] = {
    "state": ("flags", lambda view: frozenset({view.ct_state})),
    "status": ("flags", lambda view: frozenset({"dnat"} if view.dnat else ())),
    "direction": _constant("sym", "original"), "l3proto": _constant("sym", "ipv4"),
}
# Conntrack tuples at a filter hook: the original destination is before DNAT, and SNAT
# has not happened yet, so the reply goes from the post-DNAT destination to the source.
_CT_TUPLE = {
    ("saddr", "original"): _field("addr", "src"), ("daddr", "original"): _field("addr", "orig_dst"),
    ("saddr", "reply"): _field("addr", "dst"), ("daddr", "reply"): _field("addr", "src"),
    ("proto-src", "original"): _field("port", "sport"),
    ("proto-dst", "original"): _field("port", "orig_dport"),
    ("proto-src", "reply"): _field("port", "dport"), ("proto-dst", "reply"): _field("port", "sport"),
    ("protocol", "original"): _field("proto", "proto"), ("protocol", "reply"): _field("proto", "proto"),
}


def _left(left: Any) -> tuple[str, Getter] | None:
    """The kind of value the expression reads, and how to read it from a packet."""
    if not isinstance(left, Mapping) or len(left) != 1:
        return None
    ((key, arg),) = left.items()
    if not isinstance(arg, Mapping):
        return None
    if key == "payload":
        proto, field = arg.get("protocol"), str(arg.get("field"))
        if proto == "ip":
            return _IP_FIELDS.get(field)
        if proto in ("tcp", "udp", "th") and field in ("dport", "sport"):
            need = {"tcp": 6, "udp": 17, "th": 0}[proto]
            return "port", lambda view: getattr(view, field) if need in (0, view.proto) else _ABSENT
        return _constant("absent", _ABSENT) if proto in _L4_ABSENT else None
    if key == "meta":
        return _META_KEYS.get(str(arg.get("key")))
    if key == "ct":
        name, direction = str(arg.get("key")), arg.get("dir")
        if direction is None:
            return _CT_KEYS.get(name)
        name = {"ip saddr": "saddr", "ip daddr": "daddr"}.get(name, name)
        return _CT_TUPLE.get((name, str(direction)))
    return None


def _elements(right: Any, ctx: Ctx, where: str) -> list[Any] | None:
    """The right side as a flat list of values, prefixes and ranges; None if not a value."""
    if isinstance(right, str) and right.startswith("@"):
        if right not in ctx:
            raise ValueError(f"{where}: set {right} is not declared in this table")
        return [_unwrap(e) for e in ctx[right]]
    if isinstance(right, list):
        return [_unwrap(e) for e in right]
    if isinstance(right, Mapping) and "set" in right:
        inner = right["set"]
        return [_unwrap(e) for e in (inner if isinstance(inner, list) else [inner])]
    if isinstance(right, (str, int)) or (isinstance(right, Mapping) and {"prefix", "range"} & right.keys()):
        return [right]
    return None


def _unwrap(element: Any) -> Any:
    if isinstance(element, Mapping) and "elem" in element and isinstance(element["elem"], Mapping):
        return element["elem"].get("val")
    return element


def _right(kind: str, right: Any, ctx: Ctx, where: str) -> Callable[[Any], bool] | None:
    elements = _elements(right, ctx, where)
    if elements is None:
        return None
    if kind == "absent":
        return lambda value: False
    if kind in ("flags", "sym"):
        if not all(isinstance(e, str) for e in elements):
            return None
        names = frozenset(elements)
        return (lambda value: bool(value & names)) if kind == "flags" else (lambda value: value in names)
    if kind == "ifname":
        if not all(isinstance(e, str) for e in elements):
            return None
        return iface_test(elements, "*")
    if kind == "proto":
        numbers = {e if isinstance(e, int) else PROTOCOL_NUMBERS.get(str(e), -1) for e in elements}
        return lambda value: value in numbers
    try:
        ranges = tuple(r for r in (_span(kind, e) for e in elements) if r is not None)
    except (TypeError, ValueError, KeyError):
        return None  # a service name, a concatenation: not a value this module reads
    return lambda value: in_ranges(value, ranges)


def _span(kind: str, element: Any) -> tuple[int, int] | None:
    """An address or port element as an inclusive range; None for an IPv6 address."""
    if isinstance(element, Mapping) and "range" in element:
        low, high = (_span(kind, e) for e in element["range"])
        return None if low is None or high is None else (low[0], high[1])
    if kind == "addr":
        if isinstance(element, Mapping) and "prefix" in element:
            base = _span(kind, element["prefix"]["addr"])
            size = 1 << (32 - int(element["prefix"]["len"]))
            return None if base is None else (base[0] & ~(size - 1), (base[0] & ~(size - 1)) + size - 1)
        if ":" in str(element):
            return None
        return ipv4_int(element), ipv4_int(element)
    if isinstance(element, str) and not element.isdigit():
        raise ValueError(element)
    return int(element), int(element)


# -- rule texts --------------------------------------------------------------------


_HANDLE = re.compile(r"^(.*?)\s*# handle (\d+)$")
_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def _rule_texts(text: str) -> dict[tuple[str, str, str], dict[int, str]]:
    """Rule texts of ``nft -a list ruleset`` by (family, table, chain) and handle."""
    texts: dict[tuple[str, str, str], dict[int, str]] = {}
    stack: list[str] = []
    family = table = chain = ""
    for raw in text.splitlines():
        line = raw.strip()
        found = _HANDLE.match(line)
        body = found.group(1) if found else line
        if body.endswith("{"):
            words = body.split()
            if words[0] == "table" and len(words) == 4:
                family, table = words[1], words[2]
            elif words[0] == "chain":
                chain = words[1].strip('"')
            stack.append(words[0])
        elif line == "}":
            if stack:
                stack.pop()
        elif found and stack and stack[-1] == "chain":
            texts.setdefault((family, table, chain), {})[int(found.group(2))] = _COUNTER.sub("counter", body)
    return texts


def render(exprs: list[Any], comment: str | None = None) -> str:
    """A rough nft text of a rule, for when ``nft -a list ruleset`` output is not given."""
    parts = []
    for statement in exprs:
        if not isinstance(statement, Mapping) or len(statement) != 1:
            continue
        ((key, arg),) = statement.items()
        if key == "match":
            op = "" if arg.get("op", "==") in ("==", "in") else arg["op"] + " "
            parts.append(f"{_render_value(arg['left'])} {op}{_render_value(arg['right'])}")
        elif key in ("jump", "goto"):
            parts.append(f"{key} {arg.get('target')}")
        elif key == "xt":
            parts.append(f"xt {arg.get('type')} {arg.get('name')}")
        else:
            parts.append(key)
    if comment:
        parts.append(f'comment "{comment}"')
    return " ".join(parts)


def _render_value(value: Any) -> str:
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "set":
            return "{ " + ", ".join(_render_value(e) for e in arg) + " }"
        if key == "prefix":
            return f"{arg['addr']}/{arg['len']}"
        if key == "range":
            return "-".join(_render_value(e) for e in arg)
        if key == "payload":
            return f"{arg.get('protocol')} {arg.get('field')}"
        if key in ("meta", "ct"):
            return " ".join(str(p) for p in (key if key == "ct" else "", arg.get("dir"), arg.get("key")) if p)
        return str(key)
    if isinstance(value, list):
        return ",".join(_render_value(e) for e in value)
    return str(value)
