"""The store's schema versions, on real SQLite files and real PostgreSQL databases: a store a newer
portside wrote is refused untouched; replicas starting together build one schema; the state
directories of older versions open, migrate and keep their rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from portside.control.store import Store
from portside.control.store.database import StoreError
from portside.control.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, statements
from tests.support.stores import INSTANCE, StoreFactory, sample_task


def test_a_store_with_a_newer_schema_is_refused_naming_both_versions_and_left_unchanged(
    store_at: StoreFactory,
) -> None:
    store = store_at()
    target = store_at.target_of(store)
    newer = SCHEMA_VERSION + 1
    with store.transaction():
        store.put_meta("schema_version", newer)
    store.close()
    before = _contents(target)
    with pytest.raises(StoreError) as refused:
        Store(target)
    assert f"schema version {newer}" in str(refused.value) and f"({SCHEMA_VERSION})" in str(refused.value)
    assert _contents(target) == before


def test_replicas_starting_together_on_an_empty_database_build_the_schema_once(
    store_at: StoreFactory,
) -> None:
    target = store_at.fresh()
    start = threading.Barrier(4, timeout=30)

    def open_store(n: int) -> Store:
        start.wait()
        return store_at(target, writer=f"replica-{n}")

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(open_store, range(4), timeout=120))
    for store in stores:
        assert store.schema_version() == SCHEMA_VERSION and store.revision() == 0
    with stores[0].transaction():
        assert stores[0].current_revision == 1  # one counter row, not one per replica


@pytest.mark.parametrize("version", [1, 2])
def test_a_sqlite_state_dir_of_an_old_schema_opens_migrates_and_keeps_its_rows(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "portside.db"
    task = sample_task(1)
    old = sqlite3.connect(path)
    for statement in statements(SCHEMA) + (statements(MIGRATIONS[0]) if version == 2 else []):
        old.execute(statement)
    columns = (
        "arn, region, cluster, family, started_by, container_instance, desired_status, last_status, created_at, "
        "body"
    )
    row: list[Any] = [
        task.arn,
        task.region,
        task.cluster,
        task.family,
        None,
        INSTANCE,
        "RUNNING",
        0,
        1000.0,
        json.dumps(task.to_json()),
    ]
    if version == 2:
        columns, row = columns + ", rev", row + [7]
    old.execute(f"INSERT INTO tasks ({columns}) VALUES ({', '.join('?' * len(row))})", row)
    old.execute("INSERT INTO meta (key, value) VALUES ('first_run', '\"yes\"')")
    old.commit()
    old.close()

    store = Store(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.get_meta("schema_version") == SCHEMA_VERSION
        assert store.get_task(task.arn) == task and store.get_meta("first_run") == "yes"
        kept = 7 if version == 2 else 0
        assert store.revision() == kept  # the counter starts where the tasks' revisions were
        assert store.tasks_changed_on(INSTANCE, kept - 1) == [task]
        with store.transaction():
            assert store.current_revision == kept + 1
    finally:
        store.close()
    again = Store(path)  # and opens again as it is
    try:
        assert again.schema_version() == SCHEMA_VERSION and again.get_task(task.arn) == task
    finally:
        again.close()


def _contents(target: str) -> dict[str, list[str]]:
    """Every table of the database at ``target`` and its rows, read around portside."""
    if target.startswith("sqlite:"):
        db = sqlite3.connect(target.removeprefix("sqlite:"))
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}
        finally:
            db.close()
    import psycopg

    with psycopg.connect(target) as pg:
        tables = [
            r[0]
            for r in pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='public'"
            )
        ]
        return {t: sorted(map(repr, pg.execute(f"SELECT * FROM {t}"))) for t in tables}
