"""The PostgreSQL store's bulk insert (``PostgresConnection.executemany``), which ``store migrate``
copies with: the same SQLite dialect and booleans as ``execute``, and the same failure when the
database is lost (``StoreUnavailable``, then a reconnect in the background)."""

from __future__ import annotations

import psycopg
import pytest

from portside.control.store.database import StoreUnavailable
from portside.control.store.postgres import PostgresConnection
from tests.support.waiting import eventually

TABLE = "CREATE TABLE IF NOT EXISTS bulk (n INTEGER NOT NULL, flag INTEGER NOT NULL, name TEXT)"
INSERT = "INSERT INTO bulk (n, flag, name) VALUES (?, ?, ?)"


def test_every_row_arrives_in_order_with_booleans_as_sqlite_stores_them(postgres_url: str) -> None:
    conn = PostgresConnection(postgres_url)
    try:
        conn.execute(TABLE)
        rows = [(n, n % 3 == 0, None if n == 7 else f"row {n} 100%") for n in range(500, 0, -1)]

        conn.executemany(INSERT, rows)

        stored = conn.execute("SELECT n, flag, name FROM bulk ORDER BY rowid").fetchall()
        assert stored == [(n, int(flag), name) for n, flag, name in rows]
    finally:
        conn.close()


def test_a_lost_connection_is_store_unavailable_and_is_replaced(postgres_url: str) -> None:
    conn = PostgresConnection(postgres_url)
    try:
        conn.execute(TABLE)
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))

        with pytest.raises(StoreUnavailable, match="is unavailable"):
            conn.executemany(INSERT, [(1, True, "a"), (2, False, "b")])

        eventually(lambda: conn.available, timeout=15, what="a new connection")
        conn.executemany(INSERT, [(3, True, "c")])
        assert conn.execute("SELECT n FROM bulk").fetchall() == [(3,)]
    finally:
        conn.close()
