"""Listener rule matching: compile a listener's rules once, match every request against them.

Theory of operation
-------------------
``compile_rules`` runs when a configuration is applied, never per request. It sorts the
rules by priority (the default rule last), drops numbered rules without conditions (such a
rule can never match; only the default rule has none), and turns each ``Condition`` into a
small test function. Wildcard patterns (``*`` = zero or more characters, ``?`` = exactly one)
are classified at that time:

* no wildcard            -> a frozenset lookup,
* ``literal*``           -> one ``str.startswith(tuple)`` call for all such values,
* ``*literal``           -> one ``str.endswith(tuple)`` call,
* ``*`` alone            -> always true,
* anything else          -> one precompiled regex (all values of the condition joined into a
                            single alternation, ``fullmatch``; once a regex is needed the
                            simple shapes are folded into it, so each condition is one call).

``CompiledRules.match`` then walks the rules in priority order and returns the first whose
conditions all hold (AND across conditions, OR across one condition's values); the default
rule always matches. Host conditions are settled before that walk: for each distinct Host
key the rules whose host condition fails are dropped once and the result is cached, so a
listener with one rule per virtual host only tests the rules of the request's host. Per
request ``match`` allocates one small context object; the parsed query string and source
address are computed at most once, and only when a rule needs them. No regex is compiled per
request.

Matching rules (spec alb.md §2.2, botocore ``RuleCondition`` docs)
------------------------------------------------------------------
* ``host-header``: case-insensitive; the Host header without its ``:port`` (``[v6]:port``
  keeps the brackets). ``*.example.com`` does not match ``example.com`` (the ``.`` is literal).
  A request without a Host header matches no host condition.
* ``path-pattern``: case-sensitive, against the path only (never the query). We match the
  **raw path as received**, without percent-decoding or dot-segment normalisation, which is
  also what the proxy forwards (ALB "does not rewrite the path"). ``/a%2Fb`` therefore does
  not match ``/a/b``; patterns cannot contain ``%`` so encoded characters only match via
  wildcards.
* ``http-header``: name and value case-insensitive, wildcards in values. Repeated headers
  arrive joined with ``", "``; AWS "searches them in order until a match is found", so the
  joined value is tried first and then each ``", "``-separated piece. (A single header whose
  own value contains ``", "`` can therefore also match on a piece; a documented approximation.)
* ``http-request-method``: exact and case-sensitive.
* ``query-string``: keys and values case-insensitive with wildcards; ``\\*`` and ``\\?`` in a
  pattern are a literal ``*`` / ``?`` (AWS's escape rule). The raw query is split on ``&``,
  each item on its first ``=``, and both halves are decoded (``+`` -> space, ``%XX``). A pair
  with a key needs some parameter with a matching key and value; a pair without a key matches
  any parameter's value. An item without ``=`` (``?debug``) is key ``debug`` with value ``""``
  and is also offered to key-less patterns as the value ``debug``.
* ``source-ip``: CIDR match of the TCP peer address (IPv4 and IPv6; an IPv4-mapped IPv6 peer
  ``::ffff:a.b.c.d`` is matched as IPv4). X-Forwarded-For is never consulted.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from operator import methodcaller
from typing import Any
from urllib.parse import unquote_plus

from portside.core.lb.model import Condition, Rule

__all__ = ["CompiledRules", "compile_pattern", "compile_rules", "host_key", "parse_query"]

_Test = Callable[["_Request"], object]  # truthy when the condition holds
_StrTest = Callable[[str], object]  # truthy on a match (a bool or an re.Match)

# Test order inside one rule: cheapest first (AND is order-independent). Host conditions
# are not in this list: they are settled per host key, before the request is looked at.
_COST = {
    "http-request-method": 0,
    "path-pattern": 1,
    "http-header": 2,
    "query-string": 3,
    "source-ip": 4,
}


class _Request:
    """Per-request matching context; derived values are computed lazily, once."""

    __slots__ = ("_ip", "_pairs", "headers", "method", "path", "query", "source_ip")

    def __init__(
        self, method: str, path: str, query: str, headers: Mapping[str, str], source_ip: str
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.source_ip = source_ip
        self._pairs: tuple[tuple[str, str, bool], ...] | None = None
        self._ip: tuple[int, int] | None = None

    def pairs(self) -> tuple[tuple[str, str, bool], ...]:
        if self._pairs is None:
            self._pairs = parse_query(self.query)
        return self._pairs

    def ip(self) -> tuple[int, int]:
        if self._ip is None:
            self._ip = _parse_ip(self.source_ip)
        return self._ip


_Plan = tuple[tuple[Rule, tuple[_Test, ...]], ...]
# A plan and its path gate (None: no gate): see ``_gated``.
_GatedPlan = tuple["_StrTest | None", _Plan]
# (rule, host test or None, the rule's other tests)
_Entry = tuple[Rule, "_StrTest | None", tuple[_Test, ...]]

HOST_PLAN_CACHE_SIZE = 1024


class CompiledRules:
    """A listener's rules, ready to match.

    Host conditions depend on nothing but the Host header, so for each distinct host key the
    rules whose host condition fails are dropped once and the surviving rules' remaining
    tests are cached as that host's *plan* (at most ``HOST_PLAN_CACHE_SIZE`` hosts; the cache
    is emptied when full, so random Host headers cost no more than an uncached match). The
    configuration itself is immutable; the cache only memoises pure results, and single dict
    reads/writes keep it safe to share across tasks and threads.
    """

    __slots__ = ("_entries", "_has_host", "_host_plans", "_plan", "default", "rules")

    def __init__(self, rules: tuple[Rule, ...], default: Rule, entries: tuple[_Entry, ...]) -> None:
        self.rules = rules  # evaluation order: numbered rules by priority, default last
        self.default = default
        self._entries = entries
        self._has_host = any(host is not None for _, host, _ in entries)
        self._plan: _GatedPlan = _gated(tuple((rule, tests) for rule, _, tests in entries))
        self._host_plans: dict[str | None, _GatedPlan] = {}

    def match(
        self,
        method: str,
        path: str,
        query: str,
        host: str | None,
        headers: Mapping[str, str],
        source_ip: str,
    ) -> Rule:
        """Pick the rule for one request.

        :param method: request method as received (``GET``).
        :param path: the raw path, without ``?query``.
        :param query: the raw query string, without the ``?`` (``""`` when absent).
        :param host: the Host header (or ``:authority``) as received, or None.
        :param headers: lower-cased header names -> value; repeated headers joined with ``", "``.
        :param source_ip: the TCP peer address.
        Returns: the first rule by priority whose conditions all match, else the default rule.
        Raises: nothing; malformed inputs simply fail to match.
        """
        plan = self._plan
        if self._has_host:
            key = host_key(host)
            cached = self._host_plans.get(key)
            plan = cached if cached is not None else self._plan_for(key)
        gate, steps = plan
        if not steps or (gate is not None and not gate(path)):
            return self.default
        req = _Request(method, path, query, headers, source_ip)
        for rule, tests in steps:
            for test in tests:
                if not test(req):
                    break
            else:
                return rule
        return self.default

    def hostless_gate(self) -> _StrTest | None:
        """The path gate every request meets when no rule has a host condition (None: no such gate).

        A path it rejects matches no rule: callers may answer with the default rule before
        building any of ``match``'s other arguments.
        """
        if self._has_host:
            return None
        return self._plan[0]

    def _plan_for(self, key: str | None) -> _GatedPlan:
        plan = _gated(tuple(
            (rule, tests)
            for rule, host_test, tests in self._entries
            if host_test is None or (key is not None and host_test(key))
        ))
        if len(self._host_plans) >= HOST_PLAN_CACHE_SIZE:
            self._host_plans.clear()
        self._host_plans[key] = plan
        return plan


def compile_rules(rules: tuple[Rule, ...]) -> CompiledRules:
    """Compile a listener's rules for matching.

    Returns: a ``CompiledRules`` evaluating numbered rules by ascending priority (ties keep
    their given order) and the default rule last.
    Raises: ValueError if there is not exactly one default rule, or a condition is malformed
    (unknown field, bad CIDR). Configuration validation (``settings``) rejects those earlier.
    """
    defaults = [r for r in rules if r.is_default]
    if len(defaults) != 1:
        raise ValueError(f"a listener needs exactly one default rule, got {len(defaults)}")
    numbered = sorted((r for r in rules if not r.is_default), key=lambda r: r.priority)
    entries: list[_Entry] = []
    for rule in numbered:
        if not rule.conditions:
            continue  # a numbered rule with no conditions never matches
        hosts = [
            compile_pattern(c.values, ignore_case=True) for c in rule.conditions if c.field == "host-header"
        ]
        others = sorted(
            (c for c in rule.conditions if c.field != "host-header"), key=lambda c: _COST.get(c.field, 9)
        )
        host_test: _StrTest | None = None
        if len(hosts) == 1:
            host_test = hosts[0]
        elif hosts:
            host_test = _all_of(tuple(hosts))
        entries.append((rule, host_test, tuple(_compile_condition(c) for c in others)))
    return CompiledRules((*numbered, defaults[0]), defaults[0], tuple(entries))


def _gated(plan: _Plan) -> _GatedPlan:
    """Give a plan a path gate when every rule in it has a path condition.

    A request matches such a rule only if its path matches one of the rule's path patterns, so
    a path matching none of the plan's patterns goes straight to the default rule: one call
    (a ``startswith`` over a tuple, or one regex) instead of a test per rule.
    """
    patterns: list[str] = []
    for rule, _tests in plan:
        values = [v for c in rule.conditions if c.field == "path-pattern" for v in c.values]
        if not values:
            return None, plan
        patterns += values
    return (compile_pattern(patterns) if patterns else None), plan


def _all_of(tests: tuple[_StrTest, ...]) -> _StrTest:
    return lambda s: all(t(s) for t in tests)


# ---------------------------------------------------------------------------------------------
# Private: conditions


def _compile_condition(cond: Condition) -> _Test:
    field = cond.field
    if field == "path-pattern":
        path_test = compile_pattern(cond.values)
        return lambda req: path_test(req.path)
    if field == "http-request-method":
        methods = frozenset(cond.values)
        return lambda req: req.method in methods
    if field == "http-header":
        if not cond.header_name:
            raise ValueError("http-header condition without a header name")
        return _header_test(cond.header_name.lower(), compile_pattern(cond.values, ignore_case=True))
    if field == "query-string":
        return _query_test(cond.query_pairs)
    if field == "source-ip":
        return _source_ip_test(cond.values)
    raise ValueError(f"unknown condition field {field!r}")


def _header_test(name: str, value_test: _StrTest) -> _Test:
    def test(req: _Request) -> bool:
        raw = req.headers.get(name)
        if raw is None:
            return False
        value = raw.lower()
        if value_test(value):
            return True
        if ", " in value:
            for piece in value.split(", "):
                if value_test(piece):
                    return True
        return False

    return test


def _query_test(pairs: tuple[tuple[str | None, str], ...]) -> _Test:
    compiled = tuple(
        (
            None if key is None else compile_pattern((key,), ignore_case=True, escapes=True),
            compile_pattern((value,), ignore_case=True, escapes=True),
        )
        for key, value in pairs
    )

    def test(req: _Request) -> bool:
        items = req.pairs()
        for key_test, value_test in compiled:
            for key, value, has_eq in items:
                if key_test is None:
                    if value_test(value if has_eq else key):
                        return True
                elif key_test(key) and value_test(value):
                    return True
        return False

    return test


def _source_ip_test(cidrs: tuple[str, ...]) -> _Test:
    nets: list[tuple[int, int, int]] = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        nets.append((net.version, int(net.network_address), int(net.netmask)))
    frozen = tuple(nets)

    def test(req: _Request) -> bool:
        version, addr = req.ip()
        for net_version, network, mask in frozen:
            if net_version == version and addr & mask == network:
                return True
        return False

    return test


def _parse_ip(text: str) -> tuple[int, int]:
    """(version, integer) of a peer address; (0, 0) when it is not an IP address."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr: Any = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return (0, 0)
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (addr.version, int(addr))


# ---------------------------------------------------------------------------------------------
# Public helpers (also used by tests and the proxy)


def host_key(host: str | None) -> str | None:
    """The Host header as host conditions see it.

    Returns: the host lower-cased and without ``:port`` (``[::1]:80`` -> ``[::1]``), or None
    when there is no Host header.
    """
    if host is None:
        return None
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1].lower() if end != -1 else host.lower()
    colon = host.find(":")
    return (host if colon == -1 else host[:colon]).lower()


def parse_query(query: str) -> tuple[tuple[str, str, bool], ...]:
    """Split and decode a raw query string for query-string conditions.

    Returns: ``(key, value, has_equals)`` per ``&``-separated item, both halves decoded
    (``+`` -> space, ``%XX``) and lower-cased; empty items are skipped.
    """
    if not query:
        return ()
    out = []
    for item in query.split("&"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        out.append((unquote_plus(key).lower(), unquote_plus(value).lower(), bool(eq)))
    return tuple(out)


def _tokens(pattern: str, escapes: bool) -> list[str | None]:
    """Literal runs as str; ``*`` as None; ``?`` as "" (an empty marker string is not a literal)."""
    out: list[str | None] = []
    lit: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if escapes and c == "\\" and i + 1 < n:
            lit.append(pattern[i + 1])
            i += 2
            continue
        if c in "*?":
            if lit:
                out.append("".join(lit))
                lit = []
            out.append(None if c == "*" else "")
        else:
            lit.append(c)
        i += 1
    if lit:
        out.append("".join(lit))
    return out


def compile_pattern(
    patterns: tuple[str, ...] | list[str], ignore_case: bool = False, escapes: bool = False
) -> _StrTest:
    """Compile wildcard patterns (OR-ed) into one string test.

    :param ignore_case: patterns are lower-cased; the caller passes lower-cased input.
    :param escapes: ``\\*``, ``\\?`` (and ``\\`` before any character) are literals.
    Returns: a function of one ``str`` whose result is truthy when the whole string matches
    any pattern (a bool, or an ``re.Match`` for patterns that needed a regex).
    """
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    regexes: list[str] = []
    anything = False
    for raw in patterns:
        pattern = raw.lower() if ignore_case else raw
        toks = _tokens(pattern, escapes)
        if all(isinstance(t, str) and t for t in toks):
            exact.add("".join(t for t in toks if t))
        elif toks == [None]:
            anything = True
        elif len(toks) == 2 and toks[1] is None and toks[0]:
            prefixes.append(toks[0])
        elif len(toks) == 2 and toks[0] is None and toks[1]:
            suffixes.append(toks[1])
        else:
            regexes.append("".join(".*" if t is None else "." if t == "" else re.escape(t) for t in toks))
    if anything:
        return lambda s: True
    if regexes:  # one regex call beats several calls: fold the simple shapes into it
        regexes += [re.escape(p) + ".*" for p in prefixes] + [".*" + re.escape(p) for p in suffixes]
        regexes += [re.escape(p) for p in exact]
        exact, prefixes, suffixes = set(), [], []
    tests: list[_StrTest] = []
    if exact:
        tests.append(frozenset(exact).__contains__)
    if prefixes:
        tests.append(methodcaller("startswith", tuple(prefixes)))
    if suffixes:
        tests.append(methodcaller("endswith", tuple(suffixes)))
    if regexes:
        tests.append(re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL).fullmatch)
    if not tests:
        return lambda s: False
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)

    def any_of(s: str) -> bool:
        for t in frozen:
            if t(s):
                return True
        return False

    return any_of
