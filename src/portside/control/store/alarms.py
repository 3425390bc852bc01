"""CloudWatch metric alarms and their history.

An alarm is AWS's MetricAlarm document as JSON, keyed by (region, name); DescribeAlarms lists
alarms by name, as CloudWatch does. History items (DescribeAlarmHistory) are kept per alarm,
newest first, and forgotten after ``HISTORY_RETENTION_S`` (CloudWatch keeps two weeks) or when
their alarm is deleted.
"""

from __future__ import annotations

import json
from typing import Any

#: How long alarm history is kept: "Alarm history is retained for 14 days" (CloudWatch).
HISTORY_RETENTION_S = 14 * 24 * 3600.0


class AlarmRecords:
    db: Any

    def alarm(self, region: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM cw_alarms WHERE region=? AND name=?", (region, name)).fetchone()
        return json.loads(row[0]) if row else None

    def alarms(self, region: str) -> list[dict[str, Any]]:
        """The region's alarms, by name."""
        rows = self.db.execute("SELECT body FROM cw_alarms WHERE region=? ORDER BY name", (region,))
        return [json.loads(r[0]) for r in rows]

    def alarm_count(self, region: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM cw_alarms WHERE region=?", (region,)).fetchone()[0])

    def alarms_everywhere(self) -> list[tuple[str, dict[str, Any]]]:
        """(region, alarm) of every alarm, by region and name (for the evaluation loop)."""
        rows = self.db.execute("SELECT region, body FROM cw_alarms ORDER BY region, name")
        return [(region, json.loads(body)) for region, body in rows]

    def put_alarm(self, region: str, body: dict[str, Any]) -> None:
        """Add the alarm, or replace the one of the same name."""
        self.db.execute(
            "INSERT INTO cw_alarms (region, name, body) VALUES (?, ?, ?) "
            "ON CONFLICT (region, name) DO UPDATE SET body=excluded.body",
            (region, body["AlarmName"], json.dumps(body)),
        )

    def delete_alarm(self, region: str, name: str) -> bool:
        """Delete the alarm and its history; False when there was none."""
        self.db.execute("DELETE FROM cw_alarm_history WHERE region=? AND name=?", (region, name))
        cursor = self.db.execute("DELETE FROM cw_alarms WHERE region=? AND name=?", (region, name))
        return cursor.rowcount > 0

    def add_alarm_history(self, region: str, name: str, at: float, item: dict[str, Any]) -> None:
        """Record one history item, forgetting every item older than the retention."""
        self.db.execute("DELETE FROM cw_alarm_history WHERE ts < ?", (at - HISTORY_RETENTION_S,))
        self.db.execute(
            "INSERT INTO cw_alarm_history (region, name, ts, kind, body) VALUES (?, ?, ?, ?, ?)",
            (region, name, at, item["HistoryItemType"], json.dumps(item)),
        )

    def alarm_history(
        self, region: str, name: str | None, kind: str | None, start: float, end: float, newest_first: bool = True
    ) -> list[dict[str, Any]]:
        """History items in [start, end], of one alarm and one type unless None."""
        sql = "SELECT body FROM cw_alarm_history WHERE region=? AND ts >= ? AND ts <= ?"
        args: list[Any] = [region, start, end]
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        order = "DESC" if newest_first else "ASC"
        rows = self.db.execute(sql + f" ORDER BY ts {order}, rowid {order}", args)
        return [json.loads(r[0]) for r in rows]
