"""Which replica runs the controllers: a lease in the store, renewed while held, with a fencing epoch.

Every replica serves the whole API; one at a time, the **leader**, runs the controllers (services,
scaling, liveness, the drained-target sweeper). ``Leadership.run`` tries to take the lease named
``controllers`` every ``ttl/6`` seconds and renews it as often while it holds it. The expiry is on
the database's clock, so replicas' clocks need not agree.

Taking the lease raises its epoch by one. The controllers are started inside ``fenced(epoch)``:
every transaction they open checks, in the same transaction, that the lease is still held at that
epoch and rolls back with ``Deposed`` if not. So a leader that stalls past its lease (a long GC
pause, a frozen VM) and wakes after another took over cannot place a task or scale a service:
the database refuses its writes (Nomad's plan applier rule, enforced by the database).

A leader steps down (stops its controllers) when a renewal is refused, or when it could not
renew for longer than the lease: it cannot know whether another holds it now. A clean stop gives
the lease up at once, so another replica takes over without waiting for it to expire; a replica
restarted after a crash takes over its own earlier lease at once (``replica``).

With SQLite the only server takes the lease at start and keeps it: the same code path.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from portside.control.store import Store
from portside.control.store.database import StoreUnavailable, fenced

log = logging.getLogger("portside.leadership")

LEASE = "controllers"
#: The lease's default length (seconds): a failed leader is replaced within about this long.
DEFAULT_LEASE_S = 6.0


class Leadership:
    def __init__(
        self,
        store: Store,
        *,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        ttl_s: float = DEFAULT_LEASE_S,
        holder: str | None = None,
        replica: str | None = None,
    ) -> None:
        """``replica``: what stays the same across this replica's restarts (its container instance):
        a restarted replica takes over its own earlier lease at once, at the next epoch, instead of
        waiting for it to expire. ``holder`` (tests): the holder's name as given."""
        self.store = store
        self.ttl_s = ttl_s
        self._successor_of = f"{replica}/" if replica else None
        self.holder = holder or f"{replica or 'replica'}/{uuid.uuid4().hex[:12]}"
        self.epoch = 0  # the epoch held; 0 while not the leader
        self.elections = 0  # times this replica became leader (metrics)
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._renewed_at = 0.0  # monotonic time of the last successful renewal
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self.epoch > 0

    @property
    def interval_s(self) -> float:
        return self.ttl_s / 6

    async def start(self) -> None:
        """Try once now (a lone server leads before it answers its first request), then keep trying."""
        await self.tick()
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop the controllers, and give the lease up so another replica takes over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.is_leader:
            await self._step_down("stopping")
            try:
                self.store.release_lease(LEASE, self.holder)
            except StoreUnavailable:
                pass  # it expires on its own

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
            except Exception:  # the next round tries again
                log.exception("leadership round failed")

    async def tick(self) -> None:
        try:
            epoch = self.store.acquire_lease(LEASE, self.holder, self.ttl_s, self._successor_of)
        except StoreUnavailable as exc:
            if self.is_leader and time.monotonic() - self._renewed_at > self.ttl_s:
                await self._step_down(f"could not renew the lease for {self.ttl_s:g} s ({exc.message})")
            return
        if epoch is None:
            if self.is_leader:
                await self._step_down("the lease is held by another replica")
            return
        self._renewed_at = time.monotonic()
        if epoch == self.epoch:
            return
        if self.is_leader:  # held at another epoch: lost it in between, so start over
            await self._step_down(f"the lease moved to epoch {epoch}")
        self.epoch = epoch
        self.elections += 1
        log.info("leader: this replica (%s) runs the controllers at epoch %d", self.holder, epoch)
        with fenced(LEASE, self.holder, epoch):  # the controllers' tasks inherit the fence
            await self._on_elected()

    async def _step_down(self, why: str) -> None:
        log.warning("leader no more (epoch %d): %s; stopping the controllers", self.epoch, why)
        self.epoch = 0
        await self._on_deposed()
