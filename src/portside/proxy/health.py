"""Health checks: one asyncio task per registered target, feeding the pure state machine.

The first check runs at once on registration; while a target is still
``initial`` it is probed every ``INITIAL_PROBE_S`` (never slower than its
configured interval), so a copy serves as soon as it answers. Each probe is a
fresh connection (ALB closes after every check) sending
``GET <path> HTTP/1.1`` with ``Host: <ip>:<port>`` and
``User-Agent: ELB-HealthChecker/2.0``. State changes are persisted so a
restarted server resumes them (and probes at once).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import TYPE_CHECKING, Any, Protocol

from portside.core.lb import health as fsm
from portside.core.lb.model import HealthCheck
from portside.core.lb.runtime import HealthView

if TYPE_CHECKING:
    from portside.proxy.runtime import ProxyRuntime
    from portside.proxy.targets import GroupRuntime, TargetRuntime

INITIAL_PROBE_S = 0.05  # a copy that just started often listens a few ms later
USER_AGENT = b"ELB-HealthChecker/2.0"
MAX_STATUS_LINE = 1024


class HealthStore(Protocol):
    def load_health(self) -> dict[tuple[str, str, int], dict[str, Any]]: ...

    def save_health(self, group_arn: str, target_id: str, port: int, state: dict[str, Any] | None) -> None: ...


class HealthChecker:
    def __init__(self, runtime: ProxyRuntime, store: HealthStore | None) -> None:
        self.runtime = runtime
        self.store = store
        self.saved = store.load_health() if store is not None else {}
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def add(self, group: GroupRuntime, target: TargetRuntime) -> None:
        saved = self.saved.pop((target.group_arn, target.id, target.port), None)
        if target.health is None:
            target.health = _restore(saved) if saved else fsm.new_target(True)
            if target.health.state == fsm.HEALTHY:
                target.healthy_since = self.runtime.loop.time()
        key = id(target)
        if key not in self.tasks or self.tasks[key].done():
            self.tasks[key] = asyncio.ensure_future(self._run(group, target))

    def stop(self, target: TargetRuntime) -> None:
        task = self.tasks.pop(id(target), None)
        if task is not None:
            task.cancel()

    def forget(self, target: TargetRuntime) -> None:
        if self.store is not None:
            self.store.save_health(target.group_arn, target.id, target.port, None)

    def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    def view(self, target: TargetRuntime, in_use: bool) -> HealthView:
        if target.draining:
            return HealthView("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        health = fsm.set_in_use(target.health, in_use)
        return HealthView(health.state, health.reason, health.description)

    async def _run(self, group: GroupRuntime, target: TargetRuntime) -> None:
        loop = self.runtime.loop
        while not target.removed and not target.draining:
            check = group.config.health_check
            outcome = await self.probe(target, check)
            if target.removed or target.draining:
                return
            before = target.health.state
            target.health = fsm.observe(target.health, outcome, check)
            after = target.health.state
            if after != before:
                now = loop.time()
                if after == "healthy":
                    target.healthy_since = now
                    slow = group.config.attributes.slow_start_s
                    others = [
                        t for t in group.eligible if t is not target and t.state == "healthy" and t.slow_start_until <= now
                    ]
                    # ALB: new targets enter slow start only when a healthy target not in slow start exists.
                    target.slow_start_until = now + slow if slow and others else 0.0
                group.rebuild(now)
                if self.store is not None:
                    self.store.save_health(target.group_arn, target.id, target.port, _dump(target.health))
            interval = float(check.interval_s)
            await asyncio.sleep(min(INITIAL_PROBE_S, interval) if after == "initial" else interval)

    async def probe(self, target: TargetRuntime, check: HealthCheck) -> Any:
        if check.port == "traffic-port":
            address, port = target.pool.host, target.pool.port  # the path requests take
            host_header = b"%s:%d" % (target.address.encode(), target.port)
        else:
            address, port = target.address, int(check.port)
            host_header = b"%s:%d" % (address.encode(), port)
        request = b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n" % (
            check.path.encode(), host_header, USER_AGENT,
        )
        writer = None
        try:
            async with asyncio.timeout(check.timeout_s):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=self.runtime.target_tls if check.protocol == "HTTPS" else None
                )
                writer.write(request)
                line = await reader.readline()
        except TimeoutError:
            return fsm.ProbeOutcome.timeout()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            return fsm.ProbeOutcome.failed(str(exc))
        finally:
            if writer is not None:
                writer.close()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return fsm.ProbeOutcome.failed("malformed response")
        status = int(parts[1])
        return fsm.ProbeOutcome.ok(status) if fsm.matcher_accepts(check.matcher, status) else fsm.ProbeOutcome.mismatch(status)


def _dump(health: fsm.TargetHealth) -> dict[str, Any]:
    return {
        "state": health.state, "reason": health.reason, "description": health.description,
        "consecutive_successes": health.consecutive_successes, "consecutive_failures": health.consecutive_failures,
    }


def _restore(saved: dict[str, Any]) -> fsm.TargetHealth:
    return fsm.TargetHealth(**{k: saved[k] for k in _dump(fsm.new_target()) if k in saved})


class SqliteHealthStore:
    """Health states in the server's SQLite store, so a restart resumes them."""

    def __init__(self, db: Any) -> None:
        self.db = db
        db.execute(
            "CREATE TABLE IF NOT EXISTS lb_target_health (group_arn TEXT NOT NULL, target_id TEXT NOT NULL, "
            "port INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (group_arn, target_id, port))"
        )

    def load_health(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        rows = self.db.execute("SELECT group_arn, target_id, port, state FROM lb_target_health")
        return {(g, t, p): json.loads(s) for g, t, p, s in rows}

    def save_health(self, group_arn: str, target_id: str, port: int, state: dict[str, Any] | None) -> None:
        if state is None:
            self.db.execute(
                "DELETE FROM lb_target_health WHERE group_arn=? AND target_id=? AND port=?", (group_arn, target_id, port)
            )
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO lb_target_health VALUES (?, ?, ?, ?)", (group_arn, target_id, port, json.dumps(state))
            )
