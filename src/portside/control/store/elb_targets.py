"""Targets registered in ELBv2 target groups, and their draining.

A deregistered target stays, ``draining``, until its deadline passes or the proxy reports it
drained. Rowid order is registration order.
"""

from __future__ import annotations

import json
from typing import Any

#: One registered target: (target id, port, availability zone, draining, drain deadline).
TargetRow = tuple[str, int, str | None, bool, float | None]


class ElbTargetRecords:
    db: Any

    def targets_of(self, target_group_arn: str) -> list[TargetRow]:
        """The group's targets, draining ones included, in registration order."""
        rows = self.db.execute(
            "SELECT target_id, port, availability_zone, draining, drain_deadline FROM elb_targets "
            "WHERE target_group_arn=? ORDER BY rowid",
            (target_group_arn,),
        )
        return [(tid, port, az, bool(draining), deadline) for tid, port, az, draining, deadline in rows]

    def serving_targets_of(self, target_group_arn: str) -> list[tuple[str, int]]:
        """(target id, port) of the group's targets that are not draining."""
        rows = self.db.execute(
            "SELECT target_id, port FROM elb_targets WHERE target_group_arn=? AND draining=0", (target_group_arn,)
        ).fetchall()
        return [(tid, port) for tid, port in rows]

    def serving_targets_on_port(self, port: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(group ARN, target id, group record) of every target, not draining, registered on ``port``."""
        rows = self.db.execute(
            "SELECT t.target_group_arn, t.target_id, g.body FROM elb_targets t "
            "JOIN elb_target_groups g ON g.arn = t.target_group_arn WHERE t.port=? AND t.draining=0",
            (port,),
        ).fetchall()
        return [(group_arn, target_id, json.loads(body)) for group_arn, target_id, body in rows]

    def has_target(self, target_group_arn: str, target_id: str, port: int) -> bool:
        """True when the target is registered in the group (draining or not)."""
        row = self.db.execute(
            "SELECT 1 FROM elb_targets WHERE target_group_arn=? AND target_id=? AND port=?",
            (target_group_arn, target_id, port),
        ).fetchone()
        return row is not None

    def add_target(
        self, region: str, target_group_arn: str, target_id: str, port: int, zone: str | None, now: float
    ) -> None:
        self.db.execute(
            "INSERT INTO elb_targets (target_group_arn, target_id, port, region, availability_zone, draining, "
            "drain_deadline, registered_at) VALUES (?, ?, ?, ?, ?, 0, NULL, ?)",
            (target_group_arn, target_id, port, region, zone, now),
        )

    def reregister_target(self, target_group_arn: str, target_id: str, port: int, zone: str | None) -> None:
        """A registered target serves again: no longer draining; ``zone`` replaces its zone unless None."""
        self.db.execute(
            "UPDATE elb_targets SET draining=0, drain_deadline=NULL, availability_zone=COALESCE(?, availability_zone) "
            "WHERE target_group_arn=? AND target_id=? AND port=?",
            (zone, target_group_arn, target_id, port),
        )

    def drain_target(self, target_group_arn: str, target_id: str, port: int, deadline: float) -> None:
        self.db.execute(
            "UPDATE elb_targets SET draining=1, drain_deadline=? WHERE target_group_arn=? AND target_id=? AND port=?",
            (deadline, target_group_arn, target_id, port),
        )

    def delete_target(self, target_group_arn: str, target_id: str, port: int) -> None:
        self.db.execute(
            "DELETE FROM elb_targets WHERE target_group_arn=? AND target_id=? AND port=?",
            (target_group_arn, target_id, port),
        )

    def delete_drained_target(self, target_group_arn: str, target_id: str, port: int) -> bool:
        """Forget the target if it is draining; True when it was."""
        cursor = self.db.execute(
            "DELETE FROM elb_targets WHERE target_group_arn=? AND target_id=? AND port=? AND draining=1",
            (target_group_arn, target_id, port),
        )
        return cursor.rowcount > 0

    def delete_targets_drained_by(self, now: float) -> int:
        """Forget every draining target whose deadline is ``now`` or earlier; how many."""
        cursor = self.db.execute(
            "DELETE FROM elb_targets WHERE draining=1 AND drain_deadline IS NOT NULL AND drain_deadline <= ?",
            (now,),
        )
        return max(cursor.rowcount, 0)
