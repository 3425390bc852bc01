"""Application Auto Scaling scheduled actions (``control/scheduled_actions.py``).

Bodies are AWS-shaped JSON (members starting with ``_`` are portside's own bookkeeping: when the
scheduled-action round last looked at the action); rows are upserted in place, so rowid order is
creation order (what DescribeScheduledActions lists in). An action is keyed by its scalable
target (region, namespace, resource id, dimension) and its name.
"""

from __future__ import annotations

import json
from typing import Any

#: (service namespace, resource id, scalable dimension)
TargetKey = tuple[str, str, str]

_WHERE_TARGET = "region=? AND namespace=? AND resource_id=? AND dimension=?"


class ScheduledActionRecords:
    db: Any

    def scheduled_action(self, region: str, key: TargetKey, name: str) -> dict[str, Any] | None:
        row = self.db.execute(
            f"SELECT body FROM aas_scheduled_actions WHERE {_WHERE_TARGET} AND name=?", (region, *key, name)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put_scheduled_action(self, region: str, key: TargetKey, body: dict[str, Any]) -> None:
        """Add the action, or replace the target's action of the same name in place (its rowid stays)."""
        self.db.execute(
            "INSERT INTO aas_scheduled_actions VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (region, namespace, resource_id, dimension, name) DO UPDATE SET body=excluded.body",
            (region, *key, body["ScheduledActionName"], json.dumps(body)),
        )

    def replace_scheduled_action(self, region: str, key: TargetKey, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Replace the action's body with ``new`` only if it is still ``old`` (no put came in between,
        from this replica or another); False, writing nothing, otherwise."""
        cursor = self.db.execute(
            f"UPDATE aas_scheduled_actions SET body=? WHERE {_WHERE_TARGET} AND name=? AND body=?",
            (json.dumps(new), region, *key, old["ScheduledActionName"], json.dumps(old)),
        )
        return cursor.rowcount > 0

    def scheduled_actions(
        self, region: str, namespace: str, resource_id: str | None, dimension: str | None
    ) -> list[dict[str, Any]]:
        """The actions of ``namespace`` in ``region``, narrowed by resource and dimension unless None, in creation order."""
        sql = "SELECT body FROM aas_scheduled_actions WHERE region=? AND namespace=?"
        args: list[Any] = [region, namespace]
        for column, value in (("resource_id", resource_id), ("dimension", dimension)):
            if value:
                sql += f" AND {column}=?"
                args.append(value)
        return [json.loads(r[0]) for r in self.db.execute(sql + " ORDER BY rowid", args)]

    def scheduled_actions_everywhere(self) -> list[tuple[str, dict[str, Any]]]:
        """Every region's actions, in creation order: what the scheduled-action round walks."""
        rows = self.db.execute("SELECT region, body FROM aas_scheduled_actions ORDER BY rowid")
        return [(region, json.loads(body)) for region, body in rows]

    def delete_scheduled_action(self, region: str, key: TargetKey, name: str) -> bool:
        """Delete the target's action named ``name``; False when there was none."""
        cursor = self.db.execute(f"DELETE FROM aas_scheduled_actions WHERE {_WHERE_TARGET} AND name=?", (region, *key, name))
        return cursor.rowcount > 0

    def delete_scheduled_actions_of(self, region: str, key: TargetKey) -> None:
        """Delete every scheduled action of the target (it is being deregistered)."""
        self.db.execute(f"DELETE FROM aas_scheduled_actions WHERE {_WHERE_TARGET}", (region, *key))
