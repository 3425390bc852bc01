"""Health states of the load balancer's targets, so a restarted server resumes them.

The proxy's ``HealthStore`` protocol (proxy/health.py): the proxy imports nothing of this.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any


class TargetHealthRecords:
    db: sqlite3.Connection

    def load_health(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        rows = self.db.execute("SELECT group_arn, target_id, port, state FROM lb_target_health")
        return {(g, t, p): json.loads(s) for g, t, p, s in rows}

    def save_health(self, group_arn: str, target_id: str, port: int, state: dict[str, Any] | None) -> None:
        """Store the target's health state; None forgets it."""
        if state is None:
            self.db.execute(
                "DELETE FROM lb_target_health WHERE group_arn=? AND target_id=? AND port=?", (group_arn, target_id, port)
            )
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO lb_target_health VALUES (?, ?, ?, ?)", (group_arn, target_id, port, json.dumps(state))
            )
