"""Health checks: one asyncio task per registered target, feeding the pure state machine.

The first check runs at once on registration; while a target is still
``initial`` it is probed every ``INITIAL_PROBE_S`` (never slower than its
configured interval), so a copy serves as soon as it answers. Each probe is a
fresh connection (ALB closes after every check; TLS for HTTPS checks) whose
request and answer ``core.lb.probe`` defines: at most 8 KiB of response head is
read, within the check's timeout. State changes are persisted so a restarted
server resumes them (and probes at once), and logged with the failure that
caused them.

Nothing a target sends, and no error of our own, ends a target's loop: an
exception in one probe is logged and counts as a failed probe, an exception
while recording a result is logged, and the loop carries on at its interval.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any, Protocol

from portside.core.lb import health as fsm
from portside.core.lb import probe
from portside.core.lb.model import HealthCheck
from portside.core.lb.runtime import HealthView

if TYPE_CHECKING:
    from portside.proxy.runtime import ProxyRuntime
    from portside.proxy.targets import GroupRuntime, TargetRuntime

log = logging.getLogger("portside.proxy.health")

INITIAL_PROBE_S = 0.05  # a copy that just started often listens a few ms later
READ_CHUNK_BYTES = 4096


class HealthStore(Protocol):
    """Where health states outlive the server: what the checker needs (the control plane's store
    implements it, ``control/store/health.py``)."""

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
        warming = health.state == "healthy" and target.slow_start_until > self.runtime.loop.time()
        return HealthView(health.state, health.reason, health.description, warming)

    async def _run(self, group: GroupRuntime, target: TargetRuntime) -> None:
        name = f"{target.id}:{target.port} in {target.group_arn}"
        last_error = ""  # the same error in consecutive rounds is logged once, not at every interval
        while not target.removed and not target.draining:
            check = group.config.health_check
            error = ""
            try:
                outcome = await self.probe(target, check)
            except Exception as exc:  # a bug of ours or a surprise from below: one failed probe, not a dead loop
                error = repr(exc)
                if error != last_error:
                    log.exception("health check of %s failed unexpectedly (counted as a failed check)", name)
                outcome = fsm.ProbeOutcome.failed(f"health checker error: {error}")
            if target.removed or target.draining:
                return
            try:
                after = self._record(group, target, outcome, check)
            except Exception as exc:
                error = repr(exc)
                if error != last_error:
                    log.exception("recording the health of %s failed", name)
                after = target.state
            last_error = error
            interval = float(check.interval_s)
            await asyncio.sleep(min(INITIAL_PROBE_S, interval) if after == "initial" else interval)

    def _record(self, group: GroupRuntime, target: TargetRuntime, outcome: fsm.ProbeOutcome, check: HealthCheck) -> str:
        """Feed one outcome to the state machine; on a change rebuild the group and persist. Returns the new state."""
        before = target.health.state
        target.health = fsm.observe(target.health, outcome, check)
        after: str = target.health.state
        if after == before:
            return after
        log.info(
            "target %s:%d (at %s:%d) in %s is %s (%s)%s", target.id, target.port, target.pool.host, target.pool.port,
            target.group_arn, after, target.health.reason, f": {outcome.detail}" if outcome.detail else "",
        )
        now = self.runtime.loop.time()
        if after == "healthy":
            target.healthy_since = now
            slow = group.config.attributes.slow_start_s
            others = [t for t in group.eligible if t is not target and t.state == "healthy" and t.slow_start_until <= now]
            # ALB: new targets enter slow start only when a healthy target not in slow start exists.
            target.slow_start_until = now + slow if slow and others else 0.0
        group.rebuild(now)
        if self.store is not None:
            self.store.save_health(target.group_arn, target.id, target.port, _dump(target.health))
        return after

    async def probe(self, target: TargetRuntime, check: HealthCheck) -> fsm.ProbeOutcome:
        if check.port == "traffic-port":
            address, port = target.pool.host, target.pool.port  # the path requests take
            host_header = f"{target.address}:{target.port}"
        else:
            address, port = target.address, int(check.port)
            host_header = f"{address}:{port}"
        request = probe.probe_request(check.path, host_header)
        writer = None
        try:
            async with asyncio.timeout(check.timeout_s):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=self.runtime.target_tls if check.protocol == "HTTPS" else None,
                    limit=probe.MAX_RESPONSE_HEAD_BYTES,
                )
                writer.write(request)
                received = b""
                while True:  # ends at a decision: judge decides by the close or by 8 KiB, the timeout before that
                    chunk = await reader.read(READ_CHUNK_BYTES)
                    received += chunk
                    outcome = probe.judge(received, not chunk, check.matcher)
                    if outcome is not None:
                        return outcome
        except TimeoutError:
            return fsm.ProbeOutcome.timeout()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            return fsm.ProbeOutcome.failed(str(exc) or type(exc).__name__)
        finally:
            if writer is not None:
                writer.close()


def _dump(health: fsm.TargetHealth) -> dict[str, Any]:
    return {
        "state": health.state, "reason": health.reason, "description": health.description,
        "consecutive_successes": health.consecutive_successes, "consecutive_failures": health.consecutive_failures,
    }


def _restore(saved: dict[str, Any]) -> fsm.TargetHealth:
    return fsm.TargetHealth(**{k: saved[k] for k in _dump(fsm.new_target()) if k in saved})
