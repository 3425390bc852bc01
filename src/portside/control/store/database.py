"""The store's connection and its narrow contract: transactions, revisions, the change log, leases.

Two backends speak the same SQL (SQLite's dialect, translated for PostgreSQL by ``postgres.py``):

- **SQLite** in the state directory, the embedded default: one process owns the file and calls it
  from its event loop thread. WAL with synchronous=NORMAL is durable against a process crash.
- **PostgreSQL** (``--store postgresql://...``), shared by several replicas of the control plane.

The contract both keep (tests/integration/test_store_contract*.py run it over both, and
test_store_outage.py what happens while PostgreSQL is away):

- ``transaction()``: all writes inside commit together or not at all; nesting joins the outer one.
  Each takes the next **revision** from the one counter row at its start, and holds that row until
  it ends, so write transactions are serialised across replicas and commit order is revision order:
  a reader that sees revision R has every write of every revision up to R.
- **The change log** (``record_change``, ``changes_since``): what changed at which revision, by
  which replica. Other replicas follow it to wake their agents' polls, load-balancer watches and
  controllers. The log is trimmed; a revision older than what it keeps answers ``None`` (relist).
- **Leases** with **fencing epochs** (``acquire_lease``): a lease row whose expiry is on the
  database's clock. ``fenced(epoch)`` makes every transaction opened inside it (in this asyncio task
  and the tasks it starts) check, after taking its revision, that the lease is still held at that
  epoch, and roll back with ``Deposed`` otherwise.
- **Presence** (``mark_seen``/``seen``): when an agent or a load-balancer node last called any replica.

Rows keep a few indexed columns for filtering and the whole record as JSON, so a stored task
definition comes back byte-for-byte as it was submitted.
"""

from __future__ import annotations

import contextvars
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from portside.control.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, statements
from portside.errors import PortsideError

#: The database and its -wal/-shm files: owner only, whatever the umask (they hold every task
#: definition, environment variables included).
DB_FILE_MODE = 0o600

#: The lease epoch the current asyncio task writes under (``fenced``); None: not fenced.
_FENCE: contextvars.ContextVar["Fence | None"] = contextvars.ContextVar("portside_fence", default=None)

#: How long a SQLite call waits for a lock another connection holds (seconds).
SQLITE_BUSY_S = 10.0
#: PostgreSQL's NOTIFY channel of commits (the payload is the revision).
COMMITS_CHANNEL = "portside_commits"
#: How many revisions of the change log are kept (older watchers relist).
CHANGES_KEPT = 10_000


class StoreError(PortsideError):
    """The store cannot be opened as asked (a newer schema, a bad URL)."""


class StoreUnavailable(PortsideError):
    """The database does not answer: the request may be retried (boto3 does, for 503)."""

    code = "ServiceUnavailable"
    status_hint = 503


class StaleWrite(PortsideError):
    """A conditional update found the row changed since it was read: nothing was written."""

    code = "ConflictException"
    status_hint = 409


class Deposed(PortsideError):
    """A fenced write found its lease held by another holder or at another epoch: rolled back."""


class Database:
    def __init__(self, target: Path | str, *, writer: str | None = None) -> None:
        """Open the store at ``target``: a SQLite file path, or a ``postgresql://`` URL."""
        #: Who writes here, in the change log (one id per process).
        self.writer = writer or uuid.uuid4().hex[:12]
        self.task_watchers: list[Any] = []
        #: Called with the revision after each commit of this Store (the contract tests observe
        #: commit order through it).
        self.commit_watchers: list[Callable[[int], None]] = []
        self._depth = 0
        self._revision: int | None = None
        #: The fence the open transaction checked at its start (None: none).
        self._fence: tuple[str, str, int] | None = None
        self._lease_sql_now = "(julianday('now') - 2440587.5) * 86400.0"
        target_text = str(target)
        if target_text.startswith(("postgresql://", "postgres://")):
            from portside.control.store.postgres import PostgresConnection

            self.url: str | None = target_text
            self.path: Path | None = None
            self.db: Any = PostgresConnection(target_text)
            self.dialect = "postgresql"
            self._lease_sql_now = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
        else:
            path = Path(target_text.removeprefix("sqlite:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.url = None
            self.path = path
            _create_private(path)
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_S)
            _wal(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.dialect = "sqlite"
        #: Task writes are logged for other replicas (``put_task``): only a shared database has any.
        self.logs_changes = self.dialect == "postgresql"
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    @property
    def description(self) -> str:
        """Where the store is, for logs and /healthz (no password)."""
        if self.url is None:
            return f"sqlite:{self.path}"
        return self.db.safe_url

    def close(self) -> None:
        self.db.close()

    # -- schema

    def schema_version(self) -> int:
        """The schema version the store has (0: empty)."""
        if not self._has_table("meta"):
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None:
            return int(json.loads(row[0]))
        if not self._has_table("tasks"):
            return 0
        # Written before versions were recorded: version 2 had tasks.rev.
        return 2 if self._has_column("tasks", "rev") else 1

    def _migrate(self) -> None:
        """Bring the store up to ``SCHEMA_VERSION``, or refuse one a newer portside wrote."""
        with self._exclusive():
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.description} has schema version {version}, newer than this portside "
                    f"knows ({SCHEMA_VERSION}): it was written by a newer portside; run that version (or newer)"
                )
            steps = [SCHEMA] if version == 0 else []
            steps += MIGRATIONS[max(version, 1) - 1 :]
            if version >= 1:
                self._script(SCHEMA)  # what version 1 kept outside SCHEMA (lb_target_health) may be missing
            for step in steps:
                self._script(step)
            if steps or version == 0:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (json.dumps(SCHEMA_VERSION),),
                )

    def _script(self, script: str) -> None:
        for statement in statements(script):
            self.db.execute(statement)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One migration at a time, however many replicas start together."""
        if self.dialect == "sqlite":
            self.db.execute("BEGIN IMMEDIATE")
        else:
            self.db.execute("BEGIN")
            self.db.execute("SELECT pg_advisory_xact_lock(7070)")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_schema=current_schema() AND table_name=?"
        return self.db.execute(sql, (name,)).fetchone() is not None

    def _has_column(self, table: str, column: str) -> bool:
        if self.dialect == "sqlite":
            return any(row[1] == column for row in self.db.execute(f"PRAGMA table_info({table})"))
        sql = (
            "SELECT 1 FROM information_schema.columns WHERE table_schema=current_schema() "
            "AND table_name=? AND column_name=?"
        )
        return self.db.execute(sql, (table, column)).fetchone() is not None

    # -- transactions and revisions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nesting joins the outer one.

        Takes the next revision first (``current_revision``), then, when fenced, checks the lease.
        A nested one opened under a fence the outer one did not check checks it too (Deposed then
        rolls back the outer one with it).
        """
        if self._depth:
            fence = _FENCE.get()
            if fence is not None and fence != self._fence:
                self._check_fence(*fence)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self._depth = 1
        try:
            row = self.db.execute("UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value").fetchone()
            self._revision = int(row[0])
            self._fence = _FENCE.get()
            if self._fence is not None:
                self._check_fence(*self._fence)
            yield
        except BaseException:
            self._depth = 0
            self._revision = None
            self._rollback()
            raise
        revision = self._revision
        self._depth = 0
        self._revision = None
        if self.dialect == "postgresql":  # delivered at commit, to the other replicas' followers
            self.db.execute(f"NOTIFY {COMMITS_CHANNEL}, '{revision}'")
        self.db.execute("COMMIT")
        for watcher in list(self.commit_watchers):
            watcher(revision)

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except StoreUnavailable:
            pass  # the connection is gone, and its transaction with it

    @property
    def current_revision(self) -> int:
        """The revision of the transaction now open (inside ``transaction()`` only)."""
        if self._revision is None:
            raise RuntimeError("current_revision outside a transaction")
        return self._revision

    def revision(self) -> int:
        """The revision of the last committed write transaction."""
        return int(self.db.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])

    # -- the change log

    def record_change(self, topic: str, key: str = "") -> None:
        """Log that ``topic`` (``key`` of it) changed at this transaction's revision (opens one if none)."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO changes (rev, writer, topic, key) VALUES (?, ?, ?, ?)",
                (self.current_revision, self.writer, topic, key),
            )

    def changes_since(self, revision: int) -> list[tuple[int, str, str, str]] | None:
        """(revision, writer, topic, key) logged after ``revision``, oldest first; None: relist.

        None when ``revision`` is older than the log keeps: what changed since is not known.
        The floor is read after the log: a trim committed in between then answers None, where
        reading it first would answer the log with the trimmed revisions missing.
        """
        rows = self.db.execute(
            "SELECT rev, writer, topic, key FROM changes WHERE rev > ? ORDER BY rev", (revision,)
        ).fetchall()
        if revision < (self.get_meta("changes_floor") or 0):
            return None
        return [(int(r), w, t, k) for r, w, t, k in rows]

    def trim_changes(self, keep: int = CHANGES_KEPT) -> int:
        """Forget the log up to ``keep`` revisions back; how many entries went."""
        with self.transaction():
            floor = self.current_revision - keep
            if floor <= (self.get_meta("changes_floor") or 0):
                return 0
            cursor = self.db.execute("DELETE FROM changes WHERE rev <= ?", (floor,))
            self.put_meta("changes_floor", floor)
            return max(cursor.rowcount, 0)

    # -- leases

    def acquire_lease(self, name: str, holder: str, ttl_s: float, successor_of: str | None = None) -> int | None:
        """Take or renew the lease ``name`` for ``ttl_s`` on the database's clock; its epoch, or None.

        A free or expired lease passes to ``holder`` at the next epoch; its own lease is renewed at
        the same epoch. ``successor_of``: a holder prefix this one succeeds (the same replica before
        a restart): its lease passes at once, at the next epoch, without waiting for it to expire.
        One conditional statement: two holders never both hold it.
        """
        now = self._lease_sql_now
        prefix = successor_of or holder
        with self.transaction():
            self.db.execute(
                f"INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, {now} + ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, holder, ttl_s),
            )
            row = self.db.execute(
                f"UPDATE leases SET epoch = CASE WHEN holder = ? THEN epoch ELSE epoch + 1 END, "
                f"holder = ?, expires_at = {now} + ? WHERE name = ? "
                f"AND (holder = ? OR expires_at < {now} OR substr(holder, 1, ?) = ?) RETURNING epoch",
                (holder, holder, ttl_s, name, holder, len(prefix), prefix),
            ).fetchone()
        return int(row[0]) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), so another holder need not wait for it to expire."""
        with self.transaction():
            self.db.execute(
                f"UPDATE leases SET expires_at = {self._lease_sql_now} - 1 WHERE name = ? AND holder = ?",
                (name, holder),
            )

    def lease(self, name: str) -> tuple[str, int, float] | None:
        """(holder, epoch, seconds left on the database's clock; negative once expired) or None."""
        row = self.db.execute(
            f"SELECT holder, epoch, expires_at - {self._lease_sql_now} FROM leases WHERE name = ?", (name,)
        ).fetchone()
        return (row[0], int(row[1]), float(row[2])) if row else None

    def _check_fence(self, name: str, holder: str, epoch: int) -> None:
        row = self.db.execute(
            f"SELECT holder, epoch, expires_at > {self._lease_sql_now} FROM leases WHERE name = ?", (name,)
        ).fetchone()
        if row is None or row[0] != holder or int(row[1]) != epoch or not row[2]:
            raise Deposed(f"lease {name!r} is no longer held by {holder} at epoch {epoch}: write refused")

    # -- presence

    def mark_seen(self, kind: str, key: str, at: float) -> None:
        """``key`` of ``kind`` (agent, lb-node) called a replica at ``at`` (never moves back)."""
        self.db.execute(
            "INSERT INTO presence (kind, key, seen_at) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE "
            "SET seen_at = CASE WHEN excluded.seen_at > presence.seen_at THEN excluded.seen_at ELSE presence.seen_at END",
            (kind, key, at),
        )

    def seen(self, kind: str) -> dict[str, float]:
        return {k: float(t) for k, t in self.db.execute("SELECT key, seen_at FROM presence WHERE kind=?", (kind,))}

    # -- meta

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )


Fence = tuple[str, str, int]


@contextmanager
def fenced(name: str, holder: str, epoch: int) -> Iterator[None]:
    """Transactions opened inside, and in asyncio tasks started inside, check the lease at ``epoch``."""
    with fence_restored((name, holder, epoch)):
        yield


def current_fence() -> Fence | None:
    """The fence this code runs under (None: none); a callback run from elsewhere restores it."""
    return _FENCE.get()


@contextmanager
def fence_restored(fence: Fence | None) -> Iterator[None]:
    token = _FENCE.set(fence)
    try:
        yield
    finally:
        _FENCE.reset(token)


def _wal(db: sqlite3.Connection) -> None:
    """Switch to WAL; another connection opening the same new file at once may hold it a moment.

    Changing the journal mode takes an exclusive lock, and SQLite may answer "locked" at once rather
    than wait for it: try again until SQLITE_BUSY_S has passed.
    """
    deadline = time.monotonic() + SQLITE_BUSY_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _create_private(path: Path) -> None:
    """Create the database file owner-only before SQLite opens it (and tighten an existing one).

    SQLite creates its -wal and -shm files with the main file's permissions, so they follow.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
    try:
        os.fchmod(fd, DB_FILE_MODE)
    finally:
        os.close(fd)
