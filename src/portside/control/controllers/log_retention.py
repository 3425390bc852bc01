"""Log retention: events older than their group's ``retentionInDays`` are deleted (PutRetentionPolicy).

Runs on the leader every ``TICK_S`` (CloudWatch deletes expired events within days; portside
within a minute). A group without a policy keeps its events ``--log-retention-days`` (30 by
default; 0 keeps them until the group is deleted, as AWS does), so the store does not grow without
bound when nobody set a policy.
"""

from __future__ import annotations

import logging

from portside.control import rounds
from portside.control.plane import ControlPlane

log = logging.getLogger("portside.logs")

TICK_S = 60.0
DAY_MS = 86_400_000


class LogRetention(rounds.Periodic):
    def __init__(self, plane: ControlPlane, tick_s: float = TICK_S) -> None:
        super().__init__(tick_s, "log retention round", log)
        self.plane = plane
        self.tick_s = tick_s
        self.expired_events = 0  # deleted by retention since this replica leads

    def round(self) -> None:
        self.tick()

    def tick(self) -> None:
        now_ms = int(self.plane.clock() * 1000)
        default_days = self.plane.config.log_retention_days
        for group in self.plane.store.all_log_groups():
            days = group.retention_days if group.retention_days is not None else default_days
            if not days:
                continue
            with self.plane.store.transaction():
                self.expired_events += self.plane.store.trim_log_events(group.region, group.name, now_ms - days * DAY_MS)
