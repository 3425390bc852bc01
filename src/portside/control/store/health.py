"""Health states of the load balancer's targets, so a restarted server resumes them.

The proxy's ``HealthStore`` protocol (proxy/health.py): the proxy imports nothing of this.
"""

from __future__ import annotations

import json
from typing import Any

from portside.control.store.database import StoreUnavailable


class TargetHealthRecords:
    db: Any

    def load_health(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        rows = self.db.execute("SELECT group_arn, target_id, port, state FROM lb_target_health")
        return {(g, t, p): json.loads(s) for g, t, p, s in rows}

    def save_health(self, group_arn: str, target_id: str, port: int, state: dict[str, Any] | None) -> None:
        """Store the target's health state; None forgets it.

        While the database is away the state lives on in the proxy; it is written again on its next change.
        """
        try:
            self._save_health(group_arn, target_id, port, state)
        except StoreUnavailable:
            pass

    def _save_health(self, group_arn: str, target_id: str, port: int, state: dict[str, Any] | None) -> None:
        if state is None:
            self.db.execute(
                "DELETE FROM lb_target_health WHERE group_arn=? AND target_id=? AND port=?", (group_arn, target_id, port)
            )
        else:
            self.db.execute(
                "INSERT INTO lb_target_health VALUES (?, ?, ?, ?) "
                "ON CONFLICT (group_arn, target_id, port) DO UPDATE SET state=excluded.state",
                (group_arn, target_id, port, json.dumps(state)),
            )
