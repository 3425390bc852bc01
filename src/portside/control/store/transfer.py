"""Moving a single host's state into PostgreSQL: what ``portside store migrate`` does.

Theory of operation
-------------------
The source is a state directory's SQLite database; the target, a PostgreSQL database that holds
no portside rows yet. Either the whole state arrives, or the target is left as it was found.

1. **The source is only read.** It is opened read-only and copied whole with SQLite's online
   backup (one consistent snapshot) into a private temporary file, and that copy is opened as a
   ``Store``, which brings an older schema up to this portside's. A schema newer than this
   portside's is refused before anything is copied.
2. **The target is looked at before anything is written to it.** A row in any table of ours
   refuses it, naming the table; only what ``Store()`` itself writes into a new database is
   allowed (``meta.schema_version``, the revision counter at 0). Then ``Store(url)`` gives the
   target the current schema (which changes nothing on a database that has it).
3. **One transaction copies everything.** It checks again that the target is empty (it holds
   the revision row, so no replica writes meanwhile), copies every table in the order it was
   made, each table's rows in rowid order (PostgreSQL's ``seq`` then keeps creation order, which
   Describe* pages through), sets the revision counter to the source's, and counts every
   table's rows on both sides before it commits: any difference or error rolls it all back.

No table is skipped: a table or a column of the source that this portside does not know (a newer
portside wrote it) is an error naming it.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from portside.control.store import Store
from portside.control.store.database import StoreError
from portside.control.store.postgres import connection_options
from portside.control.store.schema import SCHEMA_VERSION
from portside.errors import PortsideError

Side = Literal["source", "target"]

#: Rows fetched from the source and sent to the target at a time.
BATCH_ROWS = 1000

#: Tables that hold a row in a new store: only these rows (key or value) may be there already.
_NEW_STORE_ROWS = {
    "meta": "SELECT COUNT(*) FROM meta WHERE key <> 'schema_version'",
    "revision": "SELECT COUNT(*) FROM revision WHERE NOT (id = 1 AND value = 0)",
}


class TransferError(StoreError):
    """The move was refused or failed; nothing was written. ``side``: which store it is about."""

    def __init__(self, side: Side, message: str) -> None:
        super().__init__(message)
        self.side = side


@dataclass(frozen=True)
class Moved:
    """What was moved: rows per table (in the order copied) and the revision the target now has."""

    rows: dict[str, int]
    revision: int


def migrate(source: Path, target_url: str) -> Moved:
    """Copy the SQLite store at ``source`` into the empty PostgreSQL database at ``target_url``.

    Raises ``TransferError`` naming the side at fault; the source is never written, and the target
    keeps no row of a move that failed.
    """
    if not source.is_file():
        raise TransferError("source", "no such file" if not source.exists() else "not a file")
    with tempfile.TemporaryDirectory(prefix="portside-migrate-") as work:  # owner-only: it holds the state
        snapshot = _snapshot(source, Path(work) / "portside.db")
        known = _layout(Path(work) / "new.db")
        with _blamed("source", "cannot open it as a portside store"):
            origin = Store(snapshot, writer="migrate")
        try:
            _refuse_unknown(origin, known)
            _refuse_unless_empty(target_url, list(known))
            with _blamed("target", "cannot give it the schema"):
                target = Store(target_url, writer="migrate")
            try:
                with _blamed("target", "copying failed, nothing kept"):
                    return _copy(origin, target, list(known))
            finally:
                target.close()
        finally:
            origin.close()


@contextmanager
def _blamed(side: Side, doing: str) -> Iterator[None]:
    """Any database error inside becomes a ``TransferError`` about ``side``: "``doing``: why"."""
    try:
        yield
    except TransferError:
        raise
    except StoreError as exc:  # the store's own words (a newer schema): they say what failed
        raise TransferError(side, exc.message) from exc
    except (PortsideError, sqlite3.Error, psycopg.Error) as exc:  # StoreUnavailable among them
        raise TransferError(side, f"{doing}: {_first_line(exc)}") from exc


def _layout(path: Path) -> dict[str, list[str]]:
    """This portside's tables (in the order they are made) and their columns: those of a new store."""
    new = Store(path)
    try:
        return {table: _columns(new, table) for table in _tables(new)}
    finally:
        new.close()


def _refuse_unknown(origin: Store, known: dict[str, list[str]]) -> None:
    """A table or column of the source that this portside does not know is an error naming it."""
    for table in _tables(origin):
        unknown = [f"table {table}"] if table not in known else [
            f"column {table}.{column}" for column in _columns(origin, table) if column not in known[table]
        ]
        if unknown:
            raise TransferError(
                "source", f"{unknown[0]} is not one this portside knows (a newer portside wrote it?): nothing copied"
            )


def _snapshot(source: Path, copy: Path) -> Path:
    """A consistent copy of ``source``, read through a read-only connection; refuses a newer schema."""
    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise TransferError("source", f"cannot open it: {exc}") from exc
    try:
        version = _schema_version(reader)
        if version > SCHEMA_VERSION:
            raise TransferError(
                "source",
                f"has schema version {version}, newer than this portside knows ({SCHEMA_VERSION}): "
                "it was written by a newer portside; migrate it with that version (or newer)",
            )
        writer = sqlite3.connect(copy)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    except sqlite3.Error as exc:
        raise TransferError("source", f"cannot read it as a portside store: {exc}") from exc
    finally:
        reader.close()
    return copy


def _schema_version(reader: sqlite3.Connection) -> int:
    """The version in ``meta`` (0 when it has none: an empty file, or one older than versions)."""
    if reader.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
        return 0
    row = reader.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(json.loads(row[0])) if row else 0


def _refuse_unless_empty(url: str, tables: list[str]) -> None:
    """Refuse a target with portside rows (or a newer schema), before anything is written to it."""
    try:
        conn = psycopg.connect(url, **connection_options())
    except psycopg.Error as exc:
        raise TransferError("target", f"cannot connect: {_first_line(exc)}") from exc
    try:
        present = {
            name for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        }
        if "meta" in present:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(json.loads(row[0])) if row else 0
            if version > SCHEMA_VERSION:
                raise TransferError(
                    "target",
                    f"has schema version {version}, newer than this portside knows ({SCHEMA_VERSION}): "
                    "it was written by a newer portside",
                )
        for table in tables:
            if table in present:
                _refuse_rows(table, _count_foreign_rows(lambda sql: conn.execute(sql).fetchone(), table))
    except psycopg.Error as exc:
        raise TransferError("target", f"cannot read it: {_first_line(exc)}") from exc
    finally:
        conn.close()


def _count_foreign_rows(fetch_one: Callable[[str], Any], table: str) -> int:
    """Rows of ``table`` beyond what a new store holds."""
    return int(fetch_one(_NEW_STORE_ROWS.get(table, f"SELECT COUNT(*) FROM {table}"))[0])


def _refuse_rows(table: str, rows: int) -> None:
    if rows:
        raise TransferError(
            "target",
            f"is not empty: table {table} holds {rows} row{'s' if rows != 1 else ''}; "
            "migrate only into a database no portside has written to",
        )


def _copy(origin: Store, target: Store, tables: list[str]) -> Moved:
    """Every table (all of ``tables``, each in the source) into ``target`` in one transaction."""
    revision = origin.revision()
    rows: dict[str, int] = {}
    with target.transaction():
        # Again, now that this transaction holds the revision row (it took revision 1 if no
        # write transaction ever committed here): no replica can have written meanwhile.
        _refuse_rows("revision", int(target.current_revision != 1))
        for table in tables:
            if table != "revision":
                _refuse_rows(table, _count_foreign_rows(lambda sql: target.db.execute(sql).fetchone(), table))
        for table in tables:
            rows[table] = _copy_table(origin, target, table)
        target.db.execute("UPDATE revision SET value = ? WHERE id = 1", (revision,))
        for table in tables:
            copied = _count(target, table)
            if copied != rows[table]:
                raise TransferError(
                    "target", f"table {table}: {copied} rows arrived of {rows[table]}: rolled back, nothing kept",
                )
    return Moved(rows=rows, revision=revision)


def _tables(store: Store) -> list[str]:
    """A SQLite store's tables, in the order they were made (SQLite's own excluded)."""
    rows = store.db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    )
    return [name for (name,) in rows]


def _columns(store: Store, table: str) -> list[str]:
    """A SQLite store's columns of ``table``, in their order."""
    return [row[1] for row in store.db.execute(f"PRAGMA table_info({table})")]


def _copy_table(origin: Store, target: Store, table: str) -> int:
    """Copy ``table``'s rows in rowid order; how many the source has (``meta``, ``revision``: see below)."""
    columns = _columns(origin, table)
    names = ", ".join(columns)
    where = ""
    if table == "revision":  # the one counter row: set from the source's, after the copy
        return _count(origin, table)
    if table == "meta":  # the target's schema_version is its own (the same version: the copy was migrated)
        where = "WHERE key <> 'schema_version' "
    cursor = origin.db.execute(f"SELECT {names} FROM {table} {where}ORDER BY rowid")
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"
    while batch := cursor.fetchmany(BATCH_ROWS):
        target.db.executemany(insert, batch)
    return _count(origin, table)


def _count(store: Store, table: str) -> int:
    return int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
