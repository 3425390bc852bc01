"""The PostgreSQL backend: one psycopg connection that speaks the store's SQLite dialect.

Statements are written once, in SQLite's dialect, and translated here (cached per text):

- ``?`` placeholders become ``%s``; ``rowid`` becomes ``seq``, a ``BIGSERIAL`` column every
  table gets (creation order, as SQLite's rowid gives it);
- in table definitions ``INTEGER`` is ``BIGINT``, ``REAL`` is ``DOUBLE PRECISION`` (PostgreSQL's
  ``REAL`` is 4 bytes) and ``TEXT`` sorts bytewise (``COLLATE "C"``, as SQLite does);
- booleans are passed as 0 and 1, which SQLite stores for them.

The connection is used from the event loop's thread only, in autocommit mode (``BEGIN`` and
``COMMIT`` come from ``Database.transaction``). When the server is away, every call fails at once
with ``StoreUnavailable`` (503, retried by boto3), never hangs: a broken connection is replaced in a
background thread (``reconnect``), and libpq's timeouts bound a call to a server that stopped
answering. ``listen`` wakes a waiter when another replica commits (NOTIFY can be lost: the
change log is the truth, and followers also poll it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import psycopg

from portside.control.store.database import COMMITS_CHANNEL, StoreError, StoreUnavailable

log = logging.getLogger("portside.store")

#: libpq's bounds on a call to a server that stopped answering (seconds, milliseconds).
CONNECT_TIMEOUT_S = 3
TCP_USER_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 10_000

_DDL = re.compile(r"^\s*(CREATE TABLE|ALTER TABLE)", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS \w+ \(", re.IGNORECASE)
_TYPES = (
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)
_ROWID = re.compile(r"\browid\b")


def translate(sql: str) -> str:
    """The PostgreSQL form of one statement in the store's SQLite dialect."""
    if _DDL.match(sql):
        for pattern, replacement in _TYPES:
            sql = pattern.sub(replacement, sql)
        if _CREATE_TABLE.match(sql):  # last, so INSERT ... VALUES without a column list fills the others
            sql = sql.rstrip().removesuffix(")") + ", seq BIGSERIAL)"
    sql = _ROWID.sub("seq", sql)
    if "%" in sql:
        sql = sql.replace("%", "%%")
    return sql.replace("?", "%s")


def connection_options() -> dict[str, Any]:
    return {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}",
        "application_name": "portside",
    }


class PostgresConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self.safe_url = without_password(url)
        self._sql: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reconnecting = False
        try:
            self._conn: psycopg.Connection[Any] | None = psycopg.connect(url, **connection_options())
        except psycopg.Error as exc:
            raise StoreError(f"--store {self.safe_url}: cannot connect: {_reason(exc)}") from exc
        self.down_since: float | None = None

    @property
    def available(self) -> bool:
        return self._conn is not None

    def execute(self, sql: str, args: Any = (), /) -> Any:
        conn = self._connection()
        text = self._translated(sql)
        if args:
            args = _params(args)
        try:
            return conn.execute(text, args or None, prepare=None)
        except psycopg.OperationalError as exc:
            raise self._unavailable(conn, exc) from exc

    def executemany(self, sql: str, rows: Any, /) -> None:
        """``execute`` for each of ``rows``, pipelined (bulk copies)."""
        conn = self._connection()
        text = self._translated(sql)
        try:
            with conn.cursor() as cursor:
                cursor.executemany(text, [_params(row) for row in rows])
        except psycopg.OperationalError as exc:
            raise self._unavailable(conn, exc) from exc

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None:
            self._start_reconnect()
            raise StoreUnavailable(f"the store {self.safe_url} is unavailable; retry")
        return conn

    def _translated(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = translate(sql)
        return text

    def _unavailable(self, conn: psycopg.Connection[Any], exc: psycopg.OperationalError) -> StoreUnavailable:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
            return StoreUnavailable(f"the store {self.safe_url} did not answer in time: {_reason(exc)}")
        self._lost(exc)
        return StoreUnavailable(f"the store {self.safe_url} is unavailable: {_reason(exc)}")

    def _lost(self, exc: BaseException) -> None:
        log.error("store: lost the connection to %s: %s", self.safe_url, _reason(exc))
        conn, self._conn = self._conn, None
        self.down_since = time.monotonic()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        with self._lock:
            if self._reconnecting:
                return
            self._reconnecting = True
        threading.Thread(target=self._reconnect, name="portside-store-reconnect", daemon=True).start()

    def _reconnect(self) -> None:
        """Connect again, once a second, off the event loop; the next call uses the new connection."""
        try:
            while self._conn is None:
                try:
                    conn = psycopg.connect(self.url, **connection_options())
                except psycopg.Error:
                    time.sleep(1.0)
                    continue
                log.warning("store: connected to %s again", self.safe_url)
                self._conn = conn
                self.down_since = None
        finally:
            with self._lock:
                self._reconnecting = False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def listen(url: str) -> psycopg.AsyncConnection[Any]:
    """An async connection that LISTENs to commits (``notifies``)."""
    conn = await psycopg.AsyncConnection.connect(url, **connection_options())
    await conn.execute(f"LISTEN {COMMITS_CHANNEL}")
    return conn


def _params(args: Any) -> list[Any]:
    """Booleans as the 0 and 1 SQLite stores for them."""
    return [int(a) if isinstance(a, bool) else a for a in args]


def without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
