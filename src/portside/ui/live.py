"""Live updates for the dashboard: server-sent event streams woken by changes, never by a timer over tables.

What wakes the streams:

- every commit of this process's store (``Store.commit_watchers``: the store's revisions);
- the plane's change topics (``ControlPlane.watchers``), which the change feed also fires for
  what other replicas wrote (control/change_feed.py);
- tasks an agent reported (``ControlPlane.task_watchers``);
- target health, which the load balancer's data plane keeps in memory and writes nowhere: each
  stream asks ``plane.lb.target_health`` about the targets of the state it sent every
  ``HEALTH_CHECK_S`` (a dictionary look-up per target, no store read) and rebuilds when an
  answer differs from the last check's.

One state is built per change, however many streams watch (the newest is cached with the change
count it was built at); a burst of commits is coalesced for ``COALESCE_S``. At most
``MAX_STREAMS`` streams run at once; ``close()`` ends them all, so a stopping server does not
wait for them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

MAX_STREAMS = 32
HEALTH_CHECK_S = 0.5
COALESCE_S = 0.25
KEEPALIVE_S = 15.0


class StreamsFull(Exception):
    pass


class LiveUpdates:
    def __init__(
        self,
        build: Callable[[], dict[str, Any]],
        health_now: Callable[[dict[str, Any]], list[str]] | None = None,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.build = build  # the page's whole state, now
        self.health_now = health_now  # target states of a built state, as the data plane sees them now
        self.max_streams = max_streams
        self.streams = 0
        self.changes = 0
        self.closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._cache: tuple[int, dict[str, Any], str] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def poke(self, *_args: Any) -> None:
        """Something changed (callable from any thread, with any arguments the hook passes)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                self._bump()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.changes += 1
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    def snapshot(self) -> tuple[dict[str, Any], str]:
        """The state as of the latest change (built once per change) and its JSON."""
        if self._cache is None or self._cache[0] != self.changes:
            changes = self.changes
            state = self.build()
            self._cache = (changes, state, json.dumps(state, separators=(",", ":")))
        return self._cache[1], self._cache[2]

    def close(self) -> None:
        self.closing = True
        if self._loop is not None and not self._loop.is_closed():
            self.poke()

    async def frames(self) -> AsyncIterator[str]:
        """SSE frames: the state whenever it changed, a comment now and then; ends on close()."""
        if self.streams >= self.max_streams:
            raise StreamsFull(f"{self.max_streams} dashboard streams are open already")
        self.streams += 1
        try:
            sent_text = ""
            idle = 0.0
            seen_health: list[str] | None = None
            while not self.closing:
                event = self._event
                state, text = self.snapshot()
                if text != sent_text:
                    sent_text = text
                    idle = 0.0
                    seen_health = self.health_now(state) if self.health_now is not None else None
                    yield f"event: state\ndata: {text}\n\n"
                if event is None:
                    return
                try:
                    await asyncio.wait_for(event.wait(), HEALTH_CHECK_S)
                    await asyncio.sleep(COALESCE_S)
                except TimeoutError:
                    idle += HEALTH_CHECK_S
                    health = self.health_now(state) if self.health_now is not None else None
                    if health != seen_health:
                        seen_health = health
                        self._bump()
                    elif idle >= KEEPALIVE_S:
                        idle = 0.0
                        yield ": keep-alive\n\n"
        finally:
            self.streams -= 1
