"""CloudWatch Logs records: log groups, their streams, and the events in them.

Groups and streams are per region, as on AWS. An event is stored as text (UTF-8, NUL-free: the
caller replaces what a container wrote that is not) with its timestamp and ingestion time in
milliseconds, and an ``event_key`` unique in its stream: the agent names each event it ships by
the container's own clock and sequence (``core/awslogs_events.py``), so a batch sent twice is
stored once (``INSERT ... ON CONFLICT DO NOTHING``). Events read back in (timestamp, arrival)
order; ``rowid`` is the arrival order, and ``(ts, rowid)`` is the position that paging tokens
carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogGroup:
    region: str
    name: str
    created_at: int  # ms
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True)
class LogStream:
    group: str
    name: str
    created_at: int  # ms
    first_event: int | None
    last_event: int | None
    last_ingestion: int | None
    stored_bytes: int


@dataclass(frozen=True)
class StoredEvent:
    stream: str
    ts: int  # ms
    ingested: int  # ms
    message: str
    position: int  # rowid: arrival order, unique in the table


@dataclass(frozen=True)
class NewEvent:
    key: str  # unique in its stream: the same key twice is stored once
    ts: int  # ms
    message: str


class LogRecords:
    db: Any

    # -- groups

    def add_log_group(self, region: str, name: str, created_at: int) -> bool:
        """Create the group; False when it exists already (nothing changes)."""
        cursor = self.db.execute(
            "INSERT INTO log_groups (region, name, created_at, retention_days) VALUES (?, ?, ?, NULL) "
            "ON CONFLICT (region, name) DO NOTHING",
            (region, name, created_at),
        )
        return bool(cursor.rowcount)

    def get_log_group(self, region: str, name: str) -> LogGroup | None:
        groups = self._groups("WHERE g.region=? AND g.name=?", (region, name))
        return groups[0] if groups else None

    def log_groups(self, region: str, prefix: str = "") -> list[LogGroup]:
        """The region's groups whose name starts with ``prefix``, by name."""
        return [g for g in self._groups("WHERE g.region=?", (region,)) if g.name.startswith(prefix)]

    def all_log_groups(self) -> list[LogGroup]:
        """Every region's groups (for retention)."""
        return self._groups("", ())

    def _groups(self, where: str, args: Sequence[Any]) -> list[LogGroup]:
        rows = self.db.execute(
            "SELECT g.region, g.name, g.created_at, g.retention_days, "
            "(SELECT COALESCE(SUM(s.stored_bytes), 0) FROM log_streams s WHERE s.region=g.region AND s.group_name=g.name) "
            f"FROM log_groups g {where} ORDER BY g.name",
            tuple(args),
        )
        return [LogGroup(r, n, int(c), None if d is None else int(d), int(b)) for r, n, c, d, b in rows]

    def set_log_retention(self, region: str, name: str, days: int | None) -> None:
        self.db.execute("UPDATE log_groups SET retention_days=? WHERE region=? AND name=?", (days, region, name))

    def delete_log_group(self, region: str, name: str) -> bool:
        """Delete the group with its streams and events; False when there was none."""
        self.db.execute("DELETE FROM log_events WHERE region=? AND group_name=?", (region, name))
        self.db.execute("DELETE FROM log_streams WHERE region=? AND group_name=?", (region, name))
        cursor = self.db.execute("DELETE FROM log_groups WHERE region=? AND name=?", (region, name))
        return bool(cursor.rowcount)

    # -- streams

    def add_log_stream(self, region: str, group: str, name: str, created_at: int) -> bool:
        """Create the stream; False when it exists already."""
        cursor = self.db.execute(
            "INSERT INTO log_streams (region, group_name, name, created_at, stored_bytes) VALUES (?, ?, ?, ?, 0) "
            "ON CONFLICT (region, group_name, name) DO NOTHING",
            (region, group, name, created_at),
        )
        return bool(cursor.rowcount)

    def get_log_stream(self, region: str, group: str, name: str) -> LogStream | None:
        streams = self._streams("WHERE region=? AND group_name=? AND name=?", (region, group, name))
        return streams[0] if streams else None

    def log_streams(self, region: str, group: str, prefix: str = "") -> list[LogStream]:
        """The group's streams whose name starts with ``prefix``, by name."""
        return [s for s in self._streams("WHERE region=? AND group_name=?", (region, group)) if s.name.startswith(prefix)]

    def _streams(self, where: str, args: Sequence[Any]) -> list[LogStream]:
        rows = self.db.execute(
            "SELECT group_name, name, created_at, first_event, last_event, last_ingestion, stored_bytes "
            f"FROM log_streams {where} ORDER BY name",
            tuple(args),
        )
        return [
            LogStream(g, n, int(c), _int(f), _int(last), _int(i), int(b)) for g, n, c, f, last, i, b in rows
        ]

    def delete_log_stream(self, region: str, group: str, name: str) -> bool:
        self.db.execute(
            "DELETE FROM log_events WHERE region=? AND group_name=? AND stream_name=?", (region, group, name)
        )
        cursor = self.db.execute(
            "DELETE FROM log_streams WHERE region=? AND group_name=? AND name=?", (region, group, name)
        )
        return bool(cursor.rowcount)

    # -- events

    def add_log_events(self, region: str, group: str, stream: str, events: Iterable[NewEvent], ingested: int) -> int:
        """Store the events not stored before (by key); how many were new. The stream must exist."""
        added = 0
        added_bytes = 0
        first: int | None = None
        last: int | None = None
        for event in events:
            cursor = self.db.execute(
                "INSERT INTO log_events (region, group_name, stream_name, event_key, ts, ingested, message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (region, group_name, stream_name, event_key) DO NOTHING",
                (region, group, stream, event.key, event.ts, ingested, event.message),
            )
            if cursor.rowcount:
                added += 1
                added_bytes += len(event.message.encode())
                first = event.ts if first is None or event.ts < first else first
                last = event.ts if last is None or event.ts > last else last
        if added:
            self.db.execute(
                "UPDATE log_streams SET "
                "first_event = CASE WHEN first_event IS NULL OR first_event > ? THEN ? ELSE first_event END, "
                "last_event = CASE WHEN last_event IS NULL OR last_event < ? THEN ? ELSE last_event END, "
                "last_ingestion = ?, stored_bytes = stored_bytes + ? "
                "WHERE region=? AND group_name=? AND name=?",
                (first, first, last, last, ingested, added_bytes, region, group, stream),
            )
        return added

    def log_events(
        self,
        region: str,
        group: str,
        streams: Sequence[str] | None,
        *,
        start: int | None = None,
        end: int | None = None,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[StoredEvent]:
        """Events of the group (of ``streams`` only, when given) in [start, end) ms.

        Ordered by (timestamp, arrival); ``after``/``before`` are exclusive (ts, position) bounds;
        ``newest_first`` walks from the end (the caller reverses the page).
        """
        sql = "SELECT stream_name, ts, ingested, message, rowid FROM log_events WHERE region=? AND group_name=?"
        args: list[Any] = [region, group]
        if streams is not None:
            if not streams:
                return []
            sql += " AND stream_name IN (" + ", ".join("?" for _ in streams) + ")"
            args.extend(streams)
        if start is not None:
            sql += " AND ts >= ?"
            args.append(start)
        if end is not None:
            sql += " AND ts < ?"
            args.append(end)
        if after is not None:
            sql += " AND (ts > ? OR (ts = ? AND rowid > ?))"
            args.extend((after[0], after[0], after[1]))
        if before is not None:
            sql += " AND (ts < ? OR (ts = ? AND rowid < ?))"
            args.extend((before[0], before[0], before[1]))
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY ts {order}, rowid {order} LIMIT ?"
        args.append(limit)
        return [StoredEvent(s, int(ts), int(i), m, int(p)) for s, ts, i, m, p in self.db.execute(sql, args)]

    def trim_log_events(self, region: str, group: str, before: int) -> int:
        """Drop the group's events older than ``before`` ms (retention); how many went."""
        cursor = self.db.execute(
            "DELETE FROM log_events WHERE region=? AND group_name=? AND ts < ?", (region, group, before)
        )
        return int(cursor.rowcount or 0)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
