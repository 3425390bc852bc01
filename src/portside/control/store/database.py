"""The state store's connection: SQLite in the state directory, its transactions and meta values.

One process owns the file and calls it from its event loop thread only. Every
write that must survive a ``kill -9`` together is done inside one
``transaction()``; WAL mode with synchronous=NORMAL is durable against a process
crash (an OS crash may lose the last commits, never corrupt the file).

Rows keep a few indexed columns for filtering and the whole record as JSON, so a
stored task definition comes back byte-for-byte as it was submitted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from portside.control.store.schema import SCHEMA, TARGET_HEALTH_SCHEMA, migrate

#: The database and its -wal/-shm files: owner only, whatever the umask (they hold every task
#: definition, environment variables included).
DB_FILE_MODE = 0o600


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        _create_private(path)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute(TARGET_HEALTH_SCHEMA)
        migrate(self.db)
        self._depth = 0
        self.task_watchers: list[Any] = []

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nesting joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- meta

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

def _create_private(path: Path) -> None:
    """Create the database file owner-only before SQLite opens it (and tighten an existing one).

    SQLite creates its -wal and -shm files with the main file's permissions, so they follow.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
    try:
        os.fchmod(fd, DB_FILE_MODE)
    finally:
        os.close(fd)
