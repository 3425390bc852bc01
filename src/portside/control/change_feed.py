"""What other replicas changed, delivered to this replica's own watchers (PostgreSQL only).

Each replica wakes its own agents' polls, load-balancer watches and controllers directly when it
writes. For what the others write it follows the store's change log from the revision it has
seen, and calls the same hooks:

- ``task`` (an assignment for an instance): that instance's assignment polls;
- ``report`` (an agent reported a task's state): ``plane.task_changed``, which the leader's service
  controller listens to;
- ``routes``: bind any new listener, apply the routing to this replica's proxy, wake route watches;
- any other topic (``services``, ``targets``, ``instances``): ``plane.notify_local(topic)``.

NOTIFY on each commit wakes the feed at once; it can be lost, so the feed also reads the log
every ``POLL_S``. The log is the truth. When the feed fell behind what the log keeps (the
database was away long, or the log was trimmed), it relists: every poll, watch and controller is
woken once and re-reads what it needs. Every ``POLL_S`` it also merges the presence the other
replicas saw (agents, load-balancer nodes) into the plane's, and now and then trims the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from portside.control.elbv2 import config as elb_config
from portside.control.plane import ControlPlane
from portside.control.store.database import StoreUnavailable

log = logging.getLogger("portside.change_feed")

#: How often the log is read without a NOTIFY (seconds).
POLL_S = 1.0
#: How often the log is trimmed (seconds).
TRIM_EVERY_S = 60.0
#: The topics every watcher hears on a relist.
TOPICS = ("services", "targets", "instances")


class ChangeFeed:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store = plane.store
        self.seen = self.store.revision()
        self.relists = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._follow()), asyncio.ensure_future(self._listen())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self) -> None:
        trimmed_at = self.plane.clock()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                self.catch_up()
                self.merge_presence()
                if self.plane.clock() - trimmed_at >= TRIM_EVERY_S:
                    trimmed_at = self.plane.clock()
                    self.store.trim_changes()
            except StoreUnavailable:
                pass  # the reconnect runs in the background; the next round catches up
            except Exception:
                log.exception("following the change log failed")

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; any NOTIFY wakes ``_follow``. Reconnects when it drops."""
        from portside.control.store.postgres import listen

        assert self.store.url is not None
        while True:
            conn: Any = None
            try:
                conn = await listen(self.store.url)
                self._wake.set()  # whatever was committed while not listening
                async for _ in conn.notifies():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # psycopg errors: the database is away; poll meanwhile
                log.debug("change feed: LISTEN connection lost: %s", exc)
            finally:
                if conn is not None:
                    try:
                        await conn.close()
                    except Exception:
                        pass
            await asyncio.sleep(POLL_S)

    def catch_up(self) -> int:
        """Deliver what other replicas logged since the last round; how many changes."""
        changes = self.store.changes_since(self.seen)
        plane = self.plane
        if changes is None:
            self.relists += 1
            self.seen = self.store.revision()
            log.warning("change feed: fell behind the kept log; waking every watcher to relist")
            self._relist()
            return 0
        delivered = 0
        routes = False
        for revision, writer, topic, key in changes:
            self.seen = max(self.seen, revision)
            if writer == self.store.writer:
                continue
            delivered += 1
            if topic == "task":
                plane.assignment_waits.notify(key)
            elif topic == "report":
                task = self.store.get_task(key)
                if task is not None:
                    plane.task_changed(task)
            elif topic == "routes":
                routes = True
            else:
                plane.notify_local(topic)
        if routes:
            elb_config.follow(plane)
        return delivered

    def _relist(self) -> None:
        plane = self.plane
        plane.assignment_waits.notify_all()
        elb_config.follow(plane)
        for topic in TOPICS:
            plane.notify_local(topic)

    def merge_presence(self) -> None:
        """Agents and load-balancer nodes that called other replicas count as seen here too."""
        for kind, seen in (("agent", self.plane.agent_seen), ("lb-node", self.plane.lb_nodes)):
            for key, at in self.store.seen(kind).items():
                if at > seen.get(key, 0.0):
                    seen[key] = at
