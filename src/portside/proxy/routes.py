"""A listener's routing snapshot: rules compiled once, actions bound to live target groups.

A ``ListenerRoutes`` is immutable once built; the runtime builds a new one on
every configuration change and swaps it in with one attribute assignment, so a
request always sees one consistent configuration and in-flight requests keep
the target they already have.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from portside.core.lb.conditions import compile_rules
from portside.core.lb.model import Action, Listener
from portside.core.lb.redirect import redirect_location
from portside.core.lb.stickiness import LB_COOKIE, TG_COOKIE, CookieJar

if TYPE_CHECKING:
    from portside.proxy.exchange import Exchange
    from portside.proxy.targets import GroupRuntime, TargetRuntime

Handler = Callable[["Exchange", bytes], None]
_NO_HEADERS: dict[str, str] = {}  # read only


class ForwardPlan:
    """A forward action: one or several weighted target groups, with optional stickiness."""

    __slots__ = ("groups", "weights", "total", "single", "jar", "group_sticky", "group_sticky_s")

    def __init__(self, groups: list[tuple[GroupRuntime, int]], secret: bytes, action: Action) -> None:
        self.groups = [g for g, w in groups if w > 0] or [g for g, _ in groups]
        self.weights = [w for _, w in groups if w > 0] or [1] * len(self.groups)
        self.total = sum(self.weights)
        self.single = self.groups[0] if len(self.groups) == 1 else None
        self.jar = CookieJar(secret)
        self.group_sticky = action.stickiness_enabled and len(self.groups) > 1
        self.group_sticky_s = action.stickiness_duration_s

    def choose(self, cookie_header: bytes | None, now: float) -> tuple[GroupRuntime | None, TargetRuntime | None, bytes | None]:
        group = self.single
        sticky = None
        if cookie_header is not None and (self.group_sticky or (group is not None and group.sticky)):
            sticky = self.jar.open_header(cookie_header, TG_COOKIE if self.group_sticky else LB_COOKIE, time.time())
        if group is None:
            if sticky is not None:
                group = next((g for g in self.groups if g.config.arn == sticky[0]), None)
            if group is None:
                pick = random.random() * self.total
                for candidate, weight in zip(self.groups, self.weights):
                    pick -= weight
                    if pick < 0:
                        group = candidate
                        break
                else:
                    group = self.groups[-1]
        if not group.sticky and not self.group_sticky:
            return group, group.pick(now), None
        target = None
        if sticky is not None and sticky[0] == group.config.arn:
            target_id, _, port = sticky[1].rpartition(":")
            if port.isdigit():
                target = group.find((target_id, int(port)))
        if target is None:
            target = group.pick(now)
        if target is None:
            return group, None, None
        duration = group.config.attributes.stickiness_duration_s if group.sticky else self.group_sticky_s
        name = TG_COOKIE if self.group_sticky else LB_COOKIE  # ALB: AWSALBTG for target group stickiness
        return group, target, self.jar.headers(name, group.config.arn, target.key_text, duration, time.time())


class ListenerRoutes:
    def __init__(self, listener: Listener, groups: dict[str, GroupRuntime], secret: bytes, scheme: str) -> None:
        self.listener = listener
        self.scheme = scheme
        handlers: dict[str, Handler] = {}
        default_handler: Handler | None = None
        for rule in listener.rules:
            handler = _handler(rule.actions, groups, secret, scheme, listener.port)
            handlers[rule.arn] = handler
            if rule.is_default:
                default_handler = handler
        self.handlers = handlers
        self.only_default = len(listener.rules) <= 1
        self.default = default_handler or _fixed(503, "text/plain", "")
        self.compiled = None if self.only_default else compile_rules(listener.rules)
        # A path no rule's path pattern matches gets the default rule, with no decoding beyond the path.
        self.path_gate = None if self.compiled is None else self.compiled.hostless_gate()
        self.needs_headers = any(c.field == "http-header" for r in listener.rules for c in r.conditions)

    def route(self, exchange: Exchange, host: bytes, peer_ip: str) -> Handler:
        if self.only_default:
            return self.default
        path, _, query = exchange.url.partition(b"?")
        path_text = path.decode("latin-1")
        gate = self.path_gate
        if gate is not None and not gate(path_text):
            return self.default
        headers = _NO_HEADERS
        if self.needs_headers:
            headers = {}
            for n, v in exchange.headers:
                name, value = n.decode("latin-1").lower(), v.decode("latin-1")
                headers[name] = headers[name] + ", " + value if name in headers else value  # repeated: joined
        rule = self.compiled.match(  # type: ignore[union-attr]
            exchange.method.decode("latin-1"), path_text, query.decode("latin-1"),
            host.decode("latin-1") or None, headers, peer_ip,
        )
        return self.handlers.get(rule.arn, self.default)


def _handler(actions: tuple[Action, ...], groups: dict[str, GroupRuntime], secret: bytes, scheme: str, port: int) -> Handler:
    action = min(actions, key=lambda a: a.order)
    if action.type == "forward":
        live = [(groups[g.arn], g.weight) for g in action.target_groups if g.arn in groups]
        if not live:
            return _fixed(503, "text/plain", "")
        plan = ForwardPlan(live, secret, action)

        def forward(exchange: Exchange, host: bytes) -> None:
            exchange.forward(plan, exchange.client.loop.time())

        return forward
    if action.type == "redirect":
        status = action.redirect_status

        def redirect(exchange: Exchange, host: bytes) -> None:
            path, _, query = exchange.url.partition(b"?")
            host_only = host.decode("latin-1").rsplit(":", 1)[0] if host else ""
            location = redirect_location(action, scheme, host_only, port, path.decode("latin-1"), query.decode("latin-1"))
            exchange.respond(status, [(b"Location", location.encode("latin-1"))], b"")

        return redirect
    return _fixed(action.fixed_status, action.fixed_content_type, action.fixed_body)


def _fixed(status: int, content_type: str | None, body_text: str) -> Handler:
    body = body_text.encode()
    headers = [(b"Content-Type", content_type.encode())] if content_type else []

    def fixed(exchange: Exchange, host: bytes) -> None:
        exchange.respond(status, headers, body)

    return fixed
