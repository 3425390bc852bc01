"""Listener rule matching: microseconds per ``CompiledRules.match`` for 1, 10 and 50 rules.

Run: ``python benchmarks/rule_match.py [--n N]``

Rule set "host+path" (shaped like a real multi-service ALB listener): rule i has a
``host-header`` condition (``svc{i}.example.com`` for even i, ``*.svc{i}.example.com`` for odd
i) AND a ``path-pattern`` condition with two values (``/api/v{i}/*`` and ``/v{i}/*/items/?``,
the latter needing a regex); every fifth rule also has an ``http-header`` condition
(``x-tenant: t{i}-*``) and every seventh a ``query-string`` condition (``version=v{i}``).
Rule set "path-only" is the same without the host conditions, so every rule is walked and
tested per request (the per-host plan cache cannot help).

Requests timed:
* first  - matches rule 0 (best case),
* last   - matches the last rule (every earlier rule is evaluated and fails),
* miss   - matches nothing and falls to the default rule (worst case),
* query  - a miss that carries a query string and headers (parsing cost included).

Reference: ``naive`` evaluates the same rules per request with ``fnmatch.fnmatchcase`` and
``str.lower`` per condition (fnmatch caches its compiled regexes, so this is the usual
"straightforward" implementation, not a strawman). The garbage collector is paused during each
timed loop, as ``timeit`` does.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import ipaddress
import itertools
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl

from portside.core.lb.conditions import compile_rules
from portside.core.lb.model import DEFAULT_RULE_PRIORITY, Action, Condition, Rule


def build_rules(count: int, with_hosts: bool = True) -> tuple[Rule, ...]:
    rules = []
    for i in range(count):
        host = f"svc{i}.example.com" if i % 2 == 0 else f"*.svc{i}.example.com"
        conds = [Condition("path-pattern", (f"/api/v{i}/*", f"/v{i}/*/items/?"))]
        if with_hosts:
            conds.insert(0, Condition("host-header", (host,)))
        if i % 5 == 4:
            conds.append(Condition("http-header", (f"t{i}-*",), header_name="X-Tenant"))
        if i % 7 == 6:
            conds.append(Condition("query-string", query_pairs=(("version", f"v{i}"),)))
        rules.append(Rule(f"rule-{i}", i + 1, tuple(conds), (Action("forward"),)))
    rules.append(Rule("default", DEFAULT_RULE_PRIORITY, (), (Action("forward"),), is_default=True))
    return tuple(rules)


def request_for(i: int) -> tuple[str, str, str, str, dict[str, str], str]:
    host = f"svc{i}.example.com:443" if i % 2 == 0 else f"www.svc{i}.example.com"
    headers = {"x-tenant": f"t{i}-blue"} if i % 5 == 4 else {}
    query = f"version=v{i}" if i % 7 == 6 else ""
    return ("GET", f"/api/v{i}/orders/17", query, host, headers, "10.1.2.3")


def naive_match(
    rules: tuple[Rule, ...],
    method: str,
    path: str,
    query: str,
    host: str | None,
    headers: Mapping[str, str],
    source_ip: str,
) -> Rule:
    for rule in sorted(rules, key=lambda r: (r.is_default, r.priority)):
        if rule.is_default:
            return rule
        ok = bool(rule.conditions)
        for c in rule.conditions:
            if c.field == "host-header":
                h = (host or "").split(":")[0].lower()
                ok = host is not None and any(fnmatch.fnmatchcase(h, v.lower()) for v in c.values)
            elif c.field == "path-pattern":
                ok = any(fnmatch.fnmatchcase(path, v) for v in c.values)
            elif c.field == "http-header":
                val = headers.get((c.header_name or "").lower())
                ok = val is not None and any(fnmatch.fnmatchcase(val.lower(), v.lower()) for v in c.values)
            elif c.field == "query-string":
                pairs = [(k.lower(), v.lower()) for k, v in parse_qsl(query, keep_blank_values=True)]
                ok = any(
                    (k is None or fnmatch.fnmatchcase(pk, k.lower())) and fnmatch.fnmatchcase(pv, v.lower())
                    for k, v in c.query_pairs
                    for pk, pv in pairs
                )
            elif c.field == "http-request-method":
                ok = method in c.values
            elif c.field == "source-ip":
                ok = any(ipaddress.ip_address(source_ip) in ipaddress.ip_network(v) for v in c.values)
            if not ok:
                break
        if ok:
            return rule
    raise AssertionError("no default rule")


def time_us(fn, args: tuple, n: int) -> float:  # type: ignore[no-untyped-def]
    gc.disable()
    try:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                fn(*args)
            best = min(best, (time.perf_counter() - start) / n)
    finally:
        gc.enable()
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000, help="matches per timing run")
    args = parser.parse_args()
    print(f"{'set':>9} {'rules':>5} {'request':>7} {'portside µs':>12} {'naive µs':>9} {'speed-up':>8}")
    for (label, with_hosts), count in itertools.product(
        (("host+path", True), ("path-only", False)), (1, 10, 50)
    ):
        rules = build_rules(count, with_hosts)
        compiled = compile_rules(rules)
        cases = {
            "first": request_for(0),
            "last": request_for(count - 1),
            "miss": ("GET", "/nothing/here", "", "other.example.org", {}, "10.1.2.3"),
            "query": (
                "POST",
                "/nothing",
                "a=1&b=two+words&c=%41",
                "other.example.org",
                {"x-tenant": "none", "user-agent": "bench"},
                "10.1.2.3",
            ),
        }
        for name, req in cases.items():
            expect = naive_match(rules, *req)
            assert compiled.match(*req) is expect, (count, name)
            ours = time_us(compiled.match, req, args.n)
            naive = time_us(naive_match, (rules, *req), max(1000, args.n // 10))
            print(f"{label:>9} {count:>5} {name:>7} {ours:>12.2f} {naive:>9.2f} {naive / ours:>7.1f}x")


if __name__ == "__main__":
    main()
