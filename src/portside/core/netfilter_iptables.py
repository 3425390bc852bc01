"""Compile ``iptables-save`` output (either backend, iptables 1.8) into netfilter rules.

Only the ``*filter`` table is compiled; the other tables are checked for syntax and
skipped. A rule is its options in order: ``!`` negates the option after it, ``-m NAME``
loads a match module whose options follow, and ``-j``/``-g`` ends the matches (target
options after it are ignored). Options of modules this parser does not know, and unknown
options of modules it knows, become one "unknown" matcher each (see the uncertainty note in
:mod:`portside.core.netfilter`); an option outside any module that iptables does not
have is an error.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from types import MappingProxyType

from portside.core.netfilter_rules import (
    CONTINUE,
    PROTOCOL_NUMBERS,
    Action,
    BaseChain,
    Matcher,
    Ranges,
    Rule,
    RuleRef,
    Ruleset,
    Tri,
    View,
    iface_test,
    in_ranges,
    ipv4_range,
    negated,
    unknown,
)

__all__ = ["parse_iptables_save"]

BUILTIN_HOOKS = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output"}
TARGET_ACTIONS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}
CT_STATE_NAMES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT")
CT_STATUS_NAMES = ("NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")
# Modules whose every option this parser evaluates (or, for comment, ignores).
KNOWN_MODULES = frozenset({"tcp", "udp", "multiport", "conntrack", "state", "iprange", "comment"})
_TOP_LEVEL = frozenset({
    "-s", "--source", "--src", "-d", "--destination", "--dst", "-i", "--in-interface",
    "-o", "--out-interface", "-p", "--protocol", "-f", "--fragment", "-m", "--match",
    "-j", "--jump", "-g", "--goto", "-4", "--ipv4",
})
_COUNTERS = re.compile(r"^\[\d+:\d+\]\s+")
_TCP_FLAGS = ("SYN", "ACK", "FIN", "RST", "URG", "PSH", "ECE", "CWR")


class _Syntax(ValueError):
    """A value that does not parse; the rule compiler adds where it was."""


def parse_iptables_save(text: str) -> Ruleset:
    """Compile the filter table of ``iptables-save`` output.

    Raises ``ValueError`` naming the line for anything that is not iptables-save syntax.
    """
    table: str | None = None
    policies: dict[str, str] = {}
    pending: list[tuple[str, str, list[str]]] = []
    bases: list[BaseChain] = []
    seen_tables: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"iptables-save line {number}"
        if line.startswith("*"):
            if table is not None:
                raise ValueError(f"{where}: table {line} starts before table *{table} is COMMITted")
            table = line[1:]
            if not table or table in seen_tables:
                raise ValueError(f"{where}: table {line!r} is empty or appears twice")
            seen_tables.add(table)
            policies, pending = {}, []
            continue
        if table is None:
            raise ValueError(f"{where}: expected '*table' before {line!r}")
        if line == "COMMIT":
            if table == "filter":
                bases = _compile_filter(policies, pending)
            table = None
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if len(parts) not in (2, 3):
                raise ValueError(f"{where}: expected ':CHAIN POLICY [packets:bytes]', got {line!r}")
            name, policy = parts[0], parts[1]
            builtin = table == "filter" and name in BUILTIN_HOOKS
            if builtin and policy not in ("ACCEPT", "DROP"):
                raise ValueError(f"{where}: chain {name} has policy {policy!r}; expected ACCEPT or DROP")
            policies[name] = policy
            continue
        body = _COUNTERS.sub("", line)
        try:
            tokens = shlex.split(body)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc} in {line!r}") from None
        if len(tokens) < 2 or tokens[0] not in ("-A", "--append"):
            raise ValueError(
                f"{where}: expected '-A CHAIN ...', ':CHAIN POLICY', 'COMMIT' or a comment, got {line!r}"
            )
        if tokens[1] not in policies:
            raise ValueError(f"{where}: chain {tokens[1]!r} is not declared in table *{table}")
        pending.append((where, body, tokens))
    if table is not None:
        raise ValueError(f"iptables-save: table *{table} has no COMMIT")
    return Ruleset("iptables", tuple(bases))


def _compile_filter(policies: dict[str, str], pending: list[tuple[str, str, list[str]]]) -> list[BaseChain]:
    compiled: dict[str, list[Rule]] = {name: [] for name in policies}
    for where, body, tokens in pending:
        chain = tokens[1]
        matches, action = _compile_rule(tokens[2:], policies, where)
        ref = RuleRef("iptables", "filter", chain, len(compiled[chain]) + 1, body)
        compiled[chain].append(Rule(ref, matches, action))
    chains = MappingProxyType({name: tuple(rules) for name, rules in compiled.items()})
    return [
        BaseChain("filter", name, hook, 0, policies[name], chains)
        for name, hook in BUILTIN_HOOKS.items()
        if name in policies
    ]


def _compile_rule(
    tokens: list[str], chains: dict[str, str], where: str
) -> tuple[tuple[Matcher, ...], Action]:
    matches: list[Matcher] = []
    negate = False
    module: str | None = None
    i = 0
    while i < len(tokens):
        option = tokens[i]
        if option == "!":
            if negate:
                raise ValueError(f"{where}: '!' twice in a row")
            negate = True
            i += 1
            continue
        if option in ("-j", "--jump", "-g", "--goto", "-m", "--match"):
            if negate:
                raise ValueError(f"{where}: '!' cannot negate {option}")
            if i + 1 >= len(tokens):
                raise ValueError(f"{where}: {option} needs a value")
            name = tokens[i + 1]
            if option in ("-j", "--jump", "-g", "--goto"):
                return tuple(matches), _target(option, name, chains, where)
            module, i = name, i + 2
            if module in ("tcp", "udp"):  # -m tcp reads the TCP header: TCP packets only
                matches.append(_protocol(str(PROTOCOL_NUMBERS[module])))
            elif module not in KNOWN_MODULES:
                matches.append(unknown)
                i = _skip(tokens, i, _TOP_LEVEL)
            continue
        spec = _OPTIONS.get(option)
        if spec is None:
            if module is None or not option.startswith("--"):
                raise ValueError(f"{where}: unknown option {option!r}")
            matches.append(unknown)  # e.g. -m conntrack --ctexpire, -m tcp --tcp-option
            i, negate = _skip(tokens, i + 1, None), False
            continue
        count, build = spec
        args = tokens[i + 1 : i + 1 + count]
        if len(args) < count:
            raise ValueError(f"{where}: {option} needs {count} value(s)")
        try:
            matcher = build(*args)
        except ValueError as exc:
            raise ValueError(f"{where}: {option} {' '.join(args)}: {exc}") from None
        if matcher is not None:
            matches.append(negated(matcher) if negate else matcher)
        negate, i = False, i + 1 + count
    if negate:
        raise ValueError(f"{where}: '!' at the end of the rule negates nothing")
    return tuple(matches), CONTINUE


def _skip(tokens: list[str], i: int, stop: frozenset[str] | None) -> int:
    """Index of the next option: a top-level one (``stop``) or, with ``stop=None``, any."""
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if stop is None and (token == "!" or (token.startswith("-") and not token[1:].isdigit())):
            return i
        if stop is not None and (token in stop or (token == "!" and following in stop)):
            return i
        i += 1
    return i


def _target(option: str, name: str, chains: dict[str, str], where: str) -> Action:
    if name in chains:
        return Action("goto" if option in ("-g", "--goto") else "jump", name)
    if option in ("-g", "--goto"):
        raise ValueError(f"{where}: {option} {name}: no chain of that name in table *filter")
    kind = TARGET_ACTIONS.get(name)
    return Action(kind) if kind else CONTINUE  # LOG, MARK, NFLOG, ...: non-terminating


# -- match builders: each returns a matcher, or None for an option that never affects matching


def _addresses(field: str) -> Callable[[str], Matcher]:
    def build(spec: str) -> Matcher:
        ranges = tuple(ipv4_range(part) for part in spec.split(","))
        return lambda view: in_ranges(getattr(view, field), ranges)

    return build


def _iprange(field: str) -> Callable[[str], Matcher]:
    def build(spec: str) -> Matcher:
        low, _, high = spec.partition("-")
        ranges = ((ipv4_range(low)[0], ipv4_range(high or low)[0]),)
        return lambda view: in_ranges(getattr(view, field), ranges)

    return build


def _interface(field: str) -> Callable[[str], Matcher]:
    def build(spec: str) -> Matcher:
        test = iface_test([spec], "+")

        def match(view: View) -> Tri:
            name = getattr(view, field)
            return None if name is None else test(name)

        return match

    return build


def _protocol(spec: str) -> Matcher:
    number = int(spec) if spec.isdigit() else PROTOCOL_NUMBERS.get(spec.lower(), -1)
    if number == 0:
        return lambda view: True
    return lambda view: view.proto == number


def _port_ranges(spec: str) -> Ranges:
    ranges = []
    for part in spec.split(","):
        low, colon, high = part.partition(":")
        try:
            first = int(low) if low else 0
            last = (int(high) if high else 65535) if colon else first
        except ValueError:
            raise _Syntax(f"{part!r} is not a port or a port range a:b") from None
        if not 0 <= first <= last <= 65535:
            raise _Syntax(f"{part!r} is not a port range within 0-65535")
        ranges.append((first, last))
    return tuple(ranges)


def _ports(field: str) -> Callable[[str], Matcher]:
    def build(spec: str) -> Matcher:
        ranges = _port_ranges(spec)

        def match(view: View) -> Tri:
            value = getattr(view, field)
            return None if value is None else in_ranges(value, ranges)

        return match

    return build


def _either_port(spec: str) -> Matcher:
    ranges = _port_ranges(spec)

    def match(view: View) -> Tri:
        if in_ranges(view.dport, ranges):
            return True
        return None if view.sport is None else in_ranges(view.sport, ranges)

    return match


def _ct_states(spec: str) -> Matcher:
    names = frozenset(spec.upper().split(","))
    bad = names - set(CT_STATE_NAMES)
    if bad:
        raise _Syntax(f"unknown state {min(bad)!r}; expected some of {','.join(CT_STATE_NAMES)}")
    return lambda view: view.ct_state.upper() in names or (view.dnat and "DNAT" in names)


def _ct_status(spec: str) -> Matcher:
    names = set(spec.upper().split(","))
    if names - set(CT_STATUS_NAMES):
        raise _Syntax(f"unknown status; expected some of {','.join(CT_STATUS_NAMES)}")
    # A first packet's connection is unconfirmed, unexpected and has seen no reply.
    return lambda view: False if view.ct_state == "new" else None


def _ct_dir(spec: str) -> Matcher:
    if spec.upper() not in ("ORIGINAL", "REPLY"):
        raise _Syntax("expected ORIGINAL or REPLY")
    original = spec.upper() == "ORIGINAL"
    return lambda view: original


def _tcp_flags(mask: str, comp: str) -> Matcher:
    def flags(spec: str) -> frozenset[str]:
        names = set(spec.upper().split(","))
        names = set(_TCP_FLAGS) if "ALL" in names else names - {"NONE"}
        if names - set(_TCP_FLAGS):
            raise _Syntax(f"unknown TCP flag in {spec!r}")
        return frozenset(names)

    masked, wanted = flags(mask), flags(comp)
    return lambda view: (frozenset({"SYN"}) & masked) == wanted if view.ct_state == "new" else None


_OPTIONS: dict[str, tuple[int, Callable[..., Matcher | None]]] = {}
for _names, _count, _build in (
    (("-s", "--source", "--src", "--ctorigsrc", "--ctrepldst"), 1, _addresses("src")),
    (("-d", "--destination", "--dst", "--ctreplsrc"), 1, _addresses("dst")),
    (("--ctorigdst",), 1, _addresses("orig_dst")),
    (("-i", "--in-interface"), 1, _interface("in_iface")),
    (("-o", "--out-interface"), 1, _interface("out_iface")),
    (("-p", "--protocol", "--ctproto"), 1, _protocol),
    (("--dport", "--destination-port", "--dports", "--destination-ports", "--ctreplsrcport"), 1,
     _ports("dport")),
    (("--sport", "--source-port", "--sports", "--source-ports", "--ctorigsrcport", "--ctrepldstport"), 1,
     _ports("sport")),
    (("--ctorigdstport",), 1, _ports("orig_dport")),
    (("--ports",), 1, _either_port),
    (("--ctstate", "--state"), 1, _ct_states),
    (("--ctstatus",), 1, _ct_status),
    (("--ctdir",), 1, _ct_dir),
    (("--src-range",), 1, _iprange("src")),
    (("--dst-range",), 1, _iprange("dst")),
    (("--comment",), 1, lambda text: None),
    (("-4", "--ipv4"), 0, lambda: None),
    (("-f", "--fragment"), 0, lambda: (lambda view: False)),  # a first packet is no later fragment
    (("--syn",), 0, lambda: (lambda view: view.ct_state == "new")),
    (("--tcp-flags",), 2, _tcp_flags),
):
    for _name in _names:
        _OPTIONS[_name] = (_count, _build)
