"""The data plane as one object: the ``LbRuntime`` the ELBv2 control plane drives.

Theory of operation
-------------------
``apply(config)`` turns an immutable ``LbConfig`` into live objects: one
``GroupRuntime`` per target group (kept across swaps, so health, pools and
in-flight counts survive), one ``ListenerRoutes`` snapshot per listener
(rebuilt and swapped in with a single assignment). Health checks run one task
per target (``proxy.health``). A one-second housekeeping tick does everything
time-based, so the per-request path never arms a timer: idle timeouts, drain
deadlines, the retry budget window and the trace-id epoch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from portside.config import DEFAULT_MAX_CLIENT_CONNECTIONS
from portside.core.lb.model import LbConfig, Listener, TargetGroup
from portside.core.lb.runtime import HealthView, ListenerBindError
from portside.proxy.health import HealthChecker, HealthStore
from portside.proxy.listener import ListenerRuntime
from portside.proxy.routes import ListenerRoutes
from portside.proxy.targets import GroupRuntime, TargetRuntime
from portside.proxy.tls import target_context
from portside.proxy.upstream import UpstreamPool

log = logging.getLogger("portside.proxy")

TICK_S = 1.0
RETRY_WINDOW_S = 10
RETRY_BUDGET = 0.10  # retries stay under 10 % of requests over the last 10 s ...
RETRY_BUDGET_MIN = 3  # ... or this many per window, so a quiet balancer can retry at all (Envoy's floor)
IDLE_POOL_TIMEOUT_S = 50.0  # close idle upstream connections before a typical 60 s target keep-alive does
REQUEST_HEAD_TIMEOUT_S = 60.0  # a request head must be complete this long after its first byte (nginx: 60 s)


class ProxyRuntime:
    def __init__(
        self,
        health_store: HealthStore | None = None,
        retries: bool = True,
        secret: bytes | None = None,
        request_head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S,
        max_client_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS,
    ) -> None:
        self.loop = asyncio.get_event_loop()
        self.request_head_timeout_s = request_head_timeout_s
        self.max_client_connections = max_client_connections
        self.listeners: dict[str, ListenerRuntime] = {}
        self.groups: dict[str, GroupRuntime] = {}
        self.config = LbConfig()
        self.secret = secret or os.urandom(32)
        self.retries_enabled = retries
        self.target_tls = target_context()  # HTTPS target groups: requests and health checks
        self.epoch_hex = b"%08x" % int(time.time())
        self.health = HealthChecker(self, health_store)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._drained: Callable[[str, str, int], None] | None = None
        self._tunnels: dict[Any, TargetRuntime] = {}
        # counters (read by metrics; cheap increments on the hot path)
        self.requests = 0
        self.retries = 0
        self.elb_errors: dict[int, int] = {}
        self.refused_connections = 0  # client connections refused at max_client_connections
        self.evicted_connections = 0  # idle client connections closed there to make room
        self._request_window: deque[int] = deque([0] * RETRY_WINDOW_S, maxlen=RETRY_WINDOW_S)
        self._retry_window: deque[int] = deque([0] * RETRY_WINDOW_S, maxlen=RETRY_WINDOW_S)
        self._requests_at_tick = 0
        self._retries_at_tick = 0
        self._ticker: asyncio.Task[None] | None = None

    # -- LbRuntime

    def bind_listener(self, listener: Listener) -> None:
        for bound in self.listeners.values():
            if bound.config.port == listener.port and bound.config.arn != listener.arn:
                raise ListenerBindError(f"A listener already exists on port {listener.port}.", duplicate=True)
        if listener.arn in self.listeners:
            return
        runtime = ListenerRuntime(self, listener, self._routes_for(listener))
        runtime.bind()
        self.listeners[listener.arn] = runtime
        self.track(asyncio.ensure_future(runtime.serve()))
        self._start_ticker()

    def close_listener(self, arn: str) -> None:
        runtime = self.listeners.pop(arn, None)
        if runtime is not None:
            runtime.close()

    def apply(self, config: LbConfig) -> None:
        now = self.loop.time()
        wall = time.time()
        for arn, group_config in config.target_groups.items():
            group = self.groups.get(arn)
            if group is None:
                group = self.groups[arn] = GroupRuntime(group_config, _noop)
            else:
                group.reconfigure(group_config)
            self._apply_targets(group, group_config, now, wall)
        for arn in list(self.groups):
            if arn not in config.target_groups:
                group = self.groups.pop(arn)
                for target in group.targets.values():
                    self._remove_target(target)
        self.config = config
        listed = set()
        for listener in config.listeners:
            listed.add(listener.arn)
            bound = self.listeners.get(listener.arn)
            if bound is not None:
                bound.reconfigure(listener, self._routes_for(listener))
        for arn in list(self.listeners):
            if arn not in listed:
                self.close_listener(arn)
        self._start_ticker()

    def target_health(self, target_group_arn: str, target_id: str, port: int) -> HealthView:
        group = self.groups.get(target_group_arn)
        target = group.targets.get((target_id, port)) if group else None
        if target is None:
            return HealthView("unused", "Target.NotRegistered", "Target is not registered to the target group")
        return self.health.view(target, self.group_in_use(target_group_arn))

    def set_drained_callback(self, callback: Callable[[str, str, int], None]) -> None:
        self._drained = callback

    # -- lifetime

    async def close(self) -> None:
        for arn in list(self.listeners):
            self.close_listener(arn)
        self.health.close()
        if self._ticker is not None:
            self._ticker.cancel()
        for group in self.groups.values():
            for target in group.targets.values():
                target.pool.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- used by connections and exchanges (hot path: keep these trivial)

    def track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def may_retry(self) -> bool:
        if not self.retries_enabled:
            return False
        requests = sum(self._request_window) + self.requests - self._requests_at_tick
        retries = sum(self._retry_window) + self.retries - self._retries_at_tick
        return retries + 1 <= max(RETRY_BUDGET_MIN, RETRY_BUDGET * requests)

    def count_retry(self) -> None:
        self.retries += 1

    def count_refused_connection(self) -> None:
        self.refused_connections += 1

    def count_evicted_connection(self) -> None:
        self.evicted_connections += 1

    def count_elb_error(self, status: int) -> None:
        self.elb_errors[status] = self.elb_errors.get(status, 0) + 1

    def target_idle(self, target: TargetRuntime) -> None:
        """A draining target has nothing in flight any more: its deregistration can complete."""
        if target.draining and target.in_flight == 0 and self._drained is not None:
            self.loop.call_soon(self._drained, target.group_arn, target.id, target.port)

    def tunnel_opened(self, client: Any, exchange: Any) -> None:
        target = exchange.target
        if target is not None:
            exchange.target = None  # the tunnel, not the exchange, now holds the in-flight count
            self._tunnels[client] = target

    def tunnel_closed(self, client: Any) -> None:
        target = self._tunnels.pop(client, None)
        if target is not None:
            target.in_flight -= 1
            self.target_idle(target)

    def group_in_use(self, arn: str) -> bool:
        for listener in self.config.listeners:
            for rule in listener.rules:
                for action in rule.actions:
                    if any(g.arn == arn for g in action.target_groups):
                        return True
        return False

    # -- internals

    def _routes_for(self, listener: Listener) -> ListenerRoutes:
        return ListenerRoutes(listener, self.groups, self.secret, "https" if listener.protocol == "HTTPS" else "http")

    def _apply_targets(self, group: GroupRuntime, config: TargetGroup, now: float, wall: float) -> None:
        seen = set()
        changed = False
        tls = self.target_tls if config.protocol == "HTTPS" else None  # never plaintext to an HTTPS group
        for spec in config.targets:
            key = (spec.id, spec.port)
            seen.add(key)
            target = group.targets.get(key)
            host, port = spec.connect_address or spec.address, spec.connect_port or spec.port
            if target is not None and ((host, port) != (target.pool.host, target.pool.port) or target.pool.ssl is not tls):
                self._remove_target(group.targets.pop(key))  # the copy moved, or TLS changed: start afresh
                target = None
            if target is None:
                pool = UpstreamPool(self.loop, host, port, tls)
                target = TargetRuntime(config.arn, spec.id, spec.port, spec.address, pool)
                group.targets[key] = target
                self.health.add(group, target)
                changed = True
            if spec.draining and not target.draining:
                target.draining = True
                target.drain_deadline = now + max(0.0, (spec.drain_deadline or wall) - wall)
                target.pool.close_idle()
                self.health.stop(target)
                self._abandon_connects(target)
                changed = True
                if target.in_flight == 0:
                    self.target_idle(target)
            elif not spec.draining and target.draining:  # registered again while draining
                target.draining = False
                target.drain_deadline = None
                self.health.add(group, target)
                changed = True
        for key in [k for k in group.targets if k not in seen]:
            self._remove_target(group.targets.pop(key))
            changed = True
        if changed:
            group.rebuild(now)

    def _remove_target(self, target: TargetRuntime) -> None:
        target.removed = True
        target.draining = True
        self.health.stop(target)
        target.pool.close()
        self.health.forget(target)
        self._abandon_connects(target)

    def _abandon_connects(self, target: TargetRuntime) -> None:
        """Requests still connecting to a target that leaves rotation go to another (nothing was sent)."""
        for exchange in list(target.connecting):
            exchange.target_went_away()

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick()
            except Exception:  # housekeeping must never stop; log and go on
                log.exception("proxy housekeeping failed")

    def tick(self) -> None:
        now = self.loop.time()
        self.epoch_hex = b"%08x" % int(time.time())
        self._request_window.append(self.requests - self._requests_at_tick)
        self._retry_window.append(self.retries - self._retries_at_tick)
        self._requests_at_tick = self.requests
        self._retries_at_tick = self.retries
        for listener in self.listeners.values():
            timeout = listener.config.idle_timeout_s
            for conn in list(listener.connections):
                exchange = conn.current
                if (
                    conn.head_started
                    and conn.rejected < 0
                    and conn.reading()  # while the proxy does not read, the delay is not the client's
                    and now - conn.head_started > self.request_head_timeout_s
                ):
                    conn.head_timed_out()  # a head trickled in byte by byte: 408, however active
                if exchange is None:
                    tunnel = conn.tunnel
                    if tunnel is None:
                        if now - conn.last_active > timeout:
                            conn.transport.close()
                    elif now - max(conn.last_active, tunnel.last_active) > timeout:
                        conn.abort()  # a WebSocket on which neither side sent a byte for the idle timeout
                elif exchange.upstream is not None and not exchange.finished:
                    if exchange.upstream_active:
                        exchange.upstream_active = False  # seen alive this tick; check again next tick
                        exchange.started_at = now
                    elif now - exchange.started_at > timeout and now - conn.last_active > timeout:
                        exchange.upstream_timeout()  # neither side sent a byte for the idle timeout
                elif exchange.finished and now - conn.last_active > timeout:
                    conn.abort()  # answered, but the client stopped sending the rest of its body
                target = exchange.target if exchange is not None else self._tunnels.get(conn)
                if target is not None and target.draining and target.drain_deadline is not None and now >= target.drain_deadline:
                    # ALB: the deregistration delay elapsed with the request in flight -> 502
                    conn.abort() if exchange is None or exchange.response_started else exchange.upstream_timeout(502)
        for group in self.groups.values():
            for target in group.targets.values():
                target.pool.close_idle(older_than=now - IDLE_POOL_TIMEOUT_S)
                if target.draining and target.drain_deadline is not None and now >= target.drain_deadline:
                    if not target.removed and self._drained is not None:
                        target.drain_deadline = None  # report once
                        self.loop.call_soon(self._drained, target.group_arn, target.id, target.port)


def _noop() -> None:
    return None
