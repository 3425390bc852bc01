"""``portside store migrate``: a single host's SQLite state into an empty PostgreSQL database.

The source is written through the store's own methods, as a server writes it; the CLI runs as a
user runs it; the target is a real PostgreSQL (the session's throwaway server, a fresh database
per test). Every refusal is checked to leave the target as it was and the source untouched.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from portside.cli.store import TARGET_RULE
from portside.control.store import Store
from portside.control.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, statements
from portside.core.task import Container, PortPlan, Task, TaskStatus

REGION = "us-east-1"
ACCOUNT = "000000000000"
TG = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{{}}/0123456789abcdef"
LB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/web/0123456789abcdef"
LISTENER = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/web/0123456789abcdef/{{}}"
INSTANCE = f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/default/{{}}"


def migrate(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "store", "migrate", "--from", source, "--to", target],
        capture_output=True, text=True, timeout=120,
    )


def _task(n: int, instance: str) -> Task:
    task = Task(
        arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/{n:032x}", id=f"{n:032x}", region=REGION, cluster="default",
        cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default",
        task_definition_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1", family="web", revision=1,
        network_mode="bridge", container_instance_arn=instance,
        containers=[Container("web", f"c{n}", "busybox", f"ecs-web-{n}", ports=[PortPlan(80, 49152 + n, dynamic=True)])],
        cpu=0, memory=16, created_at=1_760_000_000.0 + n,
    )
    task.advance(TaskStatus.RUNNING, 1_760_000_010.0 + n)
    return task


def write_single_host_state(path: Path) -> None:
    """A state as a server leaves it: rows whose creation order differs from their keys' order,
    rows updated in place and rows deleted (gaps in rowid), in most tables of the schema."""
    store = Store(path)
    try:
        with store.transaction():
            for name in ("zeta", "alpha", "default"):
                store.put_cluster(REGION, {"clusterName": name, "status": "ACTIVE"})
            store.put_cluster(REGION, {"clusterName": "zeta", "status": "INACTIVE"})  # in place
            for family, revision in (("web", 1), ("api", 1), ("web", 2)):
                arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}"
                body = {"family": family, "revision": revision, "taskDefinitionArn": arn, "status": "ACTIVE",
                        "containerDefinitions": [{"name": "web", "image": "busybox", "environment": [
                            {"name": "QUOTE", "value": "it's \"quoted\", 100% ünïcode ✓"}]}]}
                store.put_task_definition(REGION, body)
            for instance in ("b2", "a1"):
                store.put_container_instance(REGION, "default", {"containerInstanceArn": INSTANCE.format(instance)})
        for n in (7, 3, 5):
            store.put_task(_task(n, INSTANCE.format("a1")))
        with store.transaction():
            for name in ("web", "api", "gone"):
                store.add_target_group(REGION, {"TargetGroupArn": TG.format(name), "TargetGroupName": name, "Port": 80})
            store.delete_target_group(TG.format("gone"))
            store.update_target_group({"TargetGroupArn": TG.format("web"), "TargetGroupName": "web", "Port": 8080})
            store.add_load_balancer(REGION, {"LoadBalancerArn": LB, "LoadBalancerName": "web"})
            store.add_listener(REGION, {"ListenerArn": LISTENER.format("l1"), "LoadBalancerArn": LB, "Port": 8080})
            for port in (49155, 49153):
                store.add_target(REGION, TG.format("web"), "10.0.0.2", port, None, 1_760_000_100.5)
            store.put_tag(REGION, LB, "team", "edge")
            store.put_client_token(REGION, "RunTask", "tok-1", "{}", {"tasks": []}, 1_760_000_000.25)
            store.record_change("clusters", "zeta")
        store.save_health(TG.format("web"), "10.0.0.2", 49155, {"state": "healthy", "reason": None})
        store.acquire_lease("controllers", "replica-1", 15.0)
        store.mark_seen("agent", INSTANCE.format("a1"), 1_760_000_200.125)
    finally:
        store.close()


def sqlite_tables(path: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [n for (n,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        return {n: [row[1] for row in db.execute(f"PRAGMA table_info({n})")] for n in names}
    finally:
        db.close()


def sqlite_content(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in rowid order (SQLite's creation order)."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: [tuple(r) for r in db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")]
            for table, columns in sqlite_tables(path).items()
        }
    finally:
        db.close()


def postgres_content(url: str, tables: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """The same tables' rows in seq order (PostgreSQL's creation order); tables it lacks are absent."""
    with psycopg.connect(url) as conn:
        present = {n for (n,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        return {
            table: [tuple(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY seq")]
            for table, columns in tables.items() if table in present
        }


def fingerprint(path: Path) -> tuple[str, int, bytes]:
    """The database's bytes and modification time, and what its write-ahead log holds.

    A reader of a WAL database creates an empty log and the -shm index when they are missing
    (SQLite does, read-only or not): no content, so neither counts.
    """
    wal = path.with_name(path.name + "-wal")
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns,
            wal.read_bytes() if wal.exists() else b"")


def rows_of_every_table(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [n for (n,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        return {n: int(conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "portside.db"
    write_single_host_state(path)
    return path


# -- the move


def test_every_table_arrives_with_its_rows_in_creation_order_and_the_revision(state: Path, postgres_url: str) -> None:
    tables = sqlite_tables(state)
    before = sqlite_content(state)
    source_files = fingerprint(state)
    assert sum(1 for rows in before.values() if rows) >= 15, "the state should fill most tables"

    done = migrate(f"sqlite:{state.parent}", postgres_url)  # the state directory is enough

    assert done.returncode == 0, done.stderr
    assert fingerprint(state) == source_files, "the source was written"
    after = postgres_content(postgres_url, tables)
    assert list(after) == list(tables), "every table of the source is in the target"
    for table in tables:
        assert after[table] == before[table], table
    summary = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:] if len(line.split()) == 2}
    assert {t: int(summary[t]) for t in tables} == {t: len(before[t]) for t in tables}
    assert int(summary["total"]) == sum(len(rows) for rows in before.values())

    source, target = Store(state), Store(postgres_url)
    try:
        assert target.revision() == source.revision() > 0
        assert target.target_groups(REGION) == source.target_groups(REGION)
        assert [t.arn for t in target.live_tasks()] == [t.arn for t in source.live_tasks()]
        assert target.get_task_definition(REGION, "web", 1) == source.get_task_definition(REGION, "web", 1)
        assert target.lease("controllers")[:2] == source.lease("controllers")[:2]  # type: ignore[index]
        with target.transaction():  # the counter goes on from the source's
            target.put_cluster(REGION, {"clusterName": "after", "status": "ACTIVE"})
            assert target.current_revision == source.revision() + 1
    finally:
        source.close()
        target.close()


def write_version_2_state(path: Path) -> None:
    """A state directory as portside wrote it at schema version 2 (before replicas): made by the
    schema's own first two steps, rows as that version's server wrote them."""
    old = sqlite3.connect(path)
    try:
        for statement in statements(SCHEMA) + statements(MIGRATIONS[0]):
            old.execute(statement)
        old.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
        old.execute("INSERT INTO clusters VALUES (?, 'default', 'ACTIVE', '{}')", (REGION,))
        for rev, n in enumerate((7, 3, 5), start=4):
            task = _task(n, INSTANCE.format("a1"))
            old.execute(
                "INSERT INTO tasks (arn, region, cluster, family, started_by, container_instance, desired_status, "
                "last_status, created_at, body, rev) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                (task.arn, REGION, "default", "web", task.container_instance_arn, task.desired_status,
                 int(task.last_status), task.created_at, json.dumps(task.to_json()), rev),
            )
        old.commit()
    finally:
        old.close()


def test_an_older_schema_is_brought_up_in_a_copy_and_the_source_is_left_as_it_was(
    tmp_path: Path, postgres_url: str
) -> None:
    path = tmp_path / "portside.db"
    write_version_2_state(path)
    source_files = fingerprint(path)

    done = migrate(f"sqlite:{path}", postgres_url)

    assert done.returncode == 0, done.stderr
    assert fingerprint(path) == source_files
    assert "revision" not in sqlite_tables(path)
    target = Store(postgres_url)
    try:
        assert target.schema_version() == SCHEMA_VERSION
        assert target.revision() == 6  # what migration 3 sets the counter to: the highest tasks.rev
        assert {t.arn for t in target.live_tasks()} == {_task(n, "").arn for n in (7, 3, 5)}
    finally:
        target.close()


# -- refusals: one line naming the flag, nothing changed


def test_a_target_holding_rows_is_refused_naming_the_table(state: Path, postgres_url: str) -> None:
    earlier = Store(postgres_url)
    with earlier.transaction():
        earlier.put_cluster(REGION, {"clusterName": "theirs", "status": "ACTIVE"})
    earlier.close()
    before = postgres_content(postgres_url, sqlite_tables(state))

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"portside: --to {postgres_url}: is not empty: table clusters holds 1 row; "
        "migrate only into a database no portside has written to"
    )
    assert postgres_content(postgres_url, sqlite_tables(state)) == before


def test_a_target_some_replica_wrote_to_is_refused_even_with_its_rows_gone(state: Path, postgres_url: str) -> None:
    earlier = Store(postgres_url)
    with earlier.transaction():
        earlier.put_cluster(REGION, {"clusterName": "theirs", "status": "ACTIVE"})
    with earlier.transaction():
        earlier.db.execute("DELETE FROM clusters")
    earlier.close()

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    assert "table revision holds 1 row" in done.stderr.splitlines()[-1]
    assert rows_of_every_table(postgres_url)["clusters"] == 0


def test_a_target_a_new_store_was_opened_on_is_still_empty(state: Path, postgres_url: str) -> None:
    Store(postgres_url).close()  # schema_version and the counter at 0, as a replica leaves it before any write

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 0, done.stderr


def test_a_failure_midway_keeps_nothing(state: Path, postgres_url: str) -> None:
    db = sqlite3.connect(state)  # a value PostgreSQL's text cannot hold, in the last table copied
    db.execute("INSERT INTO presence (kind, key, seen_at) VALUES (?, ?, ?)", ("agent", "nul\x00byte", 1.0))
    db.commit()
    db.close()

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(f"portside: --to {postgres_url}: copying failed, nothing kept:")
    rows = rows_of_every_table(postgres_url)
    assert rows.pop("meta") == 1 and rows.pop("revision") == 1  # what opening a store writes
    assert set(rows.values()) == {0}, rows


def test_rows_that_do_not_all_arrive_roll_the_move_back(state: Path, postgres_url: str) -> None:
    Store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # a target that swallows inserts into one table
        conn.execute("CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER swallow BEFORE INSERT ON elb_target_groups FOR EACH ROW EXECUTE FUNCTION swallow()")

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"portside: --to {postgres_url}: table elb_target_groups: 0 rows arrived of 2: rolled back, nothing kept"
    )
    assert rows_of_every_table(postgres_url)["clusters"] == 0


@pytest.mark.parametrize("extra", ["CREATE TABLE shiny (x TEXT)", "ALTER TABLE clusters ADD COLUMN shiny TEXT"])
def test_a_table_or_column_this_portside_does_not_know_is_refused_naming_it(
    state: Path, postgres_url: str, extra: str
) -> None:
    db = sqlite3.connect(state)
    db.execute(extra)
    db.commit()
    db.close()
    source_files = fingerprint(state)

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    what = "table shiny" if "CREATE" in extra else "column clusters.shiny"
    assert done.stderr.splitlines()[-1] == (
        f"portside: --from sqlite:{state}: {what} is not one this portside knows "
        "(a newer portside wrote it?): nothing copied"
    )
    assert fingerprint(state) == source_files
    assert rows_of_every_table(postgres_url) == {}, "the target got tables"


def test_a_source_of_a_newer_schema_is_refused(state: Path, postgres_url: str) -> None:
    db = sqlite3.connect(state)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    line = done.stderr.splitlines()[-1]
    assert line.startswith(f"portside: --from sqlite:{state}: has schema version {SCHEMA_VERSION + 1}, newer than")
    assert rows_of_every_table(postgres_url) == {}


def test_a_target_of_a_newer_schema_is_refused(state: Path, postgres_url: str) -> None:
    Store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = rows_of_every_table(postgres_url)

    done = migrate(f"sqlite:{state}", postgres_url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        f"portside: --to {postgres_url}: has schema version {SCHEMA_VERSION + 1}, newer than")
    assert rows_of_every_table(postgres_url) == before


def test_an_unreachable_target_is_one_line_naming_the_flag(state: Path) -> None:
    from tests.support.postgres import free_loopback_port

    url = f"postgresql://portside@127.0.0.1:{free_loopback_port()}/nothing"  # nothing listens there

    done = migrate(f"sqlite:{state}", url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(f"portside: --to {url}: cannot connect: ")


def test_a_password_in_the_target_url_is_never_printed(state: Path) -> None:
    from tests.support.postgres import free_loopback_port

    url = f"postgresql://portside:s3cret@127.0.0.1:{free_loopback_port()}/nothing"

    done = migrate(f"sqlite:{state}", url)

    assert done.returncode == 1
    assert "s3cret" not in done.stdout + done.stderr
    assert "portside:***@127.0.0.1" in done.stderr


@pytest.mark.parametrize(("source", "target", "flag", "rule"), [
    ("{state}", "{url}", "--from", "must be sqlite:PATH"),
    ("sqlite:{missing}", "{url}", "--from", "no such file"),
    ("sqlite:{state}", "mysql://localhost/x", "--to", f"mysql://localhost/x: must be {TARGET_RULE}"),
    ("sqlite:{state}", "sqlite:/tmp/x.db", "--to", f"must be {TARGET_RULE}"),
    ("sqlite:{state}", "postgresql://portside:pw@127.0.0.1:port/x", "--to",
     f"postgresql://portside:***@127.0.0.1:port/x: must be {TARGET_RULE}"),
    ("sqlite:{state}", "postgresql://portside@127.0.0.1", "--to", f"must be {TARGET_RULE}"),
])
def test_flags_that_cannot_work_are_usage_errors_naming_the_flag(
    state: Path, postgres_url: str, tmp_path: Path, source: str, target: str, flag: str, rule: str
) -> None:
    values = {"state": state, "url": postgres_url, "missing": tmp_path / "nowhere" / "portside.db"}

    done = migrate(source.format(**values), target.format(**values))

    assert done.returncode == 2
    assert f"Invalid value for '{flag}'" in done.stderr and rule in done.stderr
    assert rows_of_every_table(postgres_url) == {}


def test_a_write_that_lands_after_the_first_look_is_found_under_the_revision_row(state: Path, postgres_url: str) -> None:
    """The copy looks again inside its transaction: a replica that wrote between the first look
    (``migrate``'s, before any write) and the copy's start is found there, and nothing is copied."""
    from portside.control.store.transfer import TransferError, _copy

    origin, target, replica = Store(state), Store(postgres_url), Store(postgres_url)
    try:
        with replica.transaction():  # the write that raced the first look: no row left, the counter moved
            replica.record_change("clusters", "x")
            replica.db.execute("DELETE FROM changes")
        with pytest.raises(TransferError, match="table revision holds 1 row") as refused:
            _copy(origin, target, list(sqlite_tables(state)))
        assert refused.value.side == "target"
        assert target.revision() == 1 and rows_of_every_table(postgres_url)["clusters"] == 0
    finally:
        origin.close()
        target.close()
        replica.close()


def test_a_target_the_role_may_not_create_tables_in_is_refused_with_postgresqls_reason(
    state: Path, postgres_url: str
) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")  # PostgreSQL 15: no CREATE on schema public for it
    try:
        url = postgres_url.replace("postgresql://portside@", f"postgresql://{role}@")

        done = migrate(f"sqlite:{state}", url)

        assert done.returncode == 1
        assert done.stderr.splitlines()[-1].startswith(
            f"portside: --to {url}: cannot give it the schema: permission denied for schema public")
        assert rows_of_every_table(postgres_url) == {}
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_source_that_is_not_a_sqlite_database_is_refused(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "portside.db"
    source.write_bytes(b"not a database, " * 100)

    done = migrate(f"sqlite:{source}", postgres_url)

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"portside: --from sqlite:{source}: cannot read it as a portside store: file is not a database")
    assert source.read_bytes() == b"not a database, " * 100
    assert rows_of_every_table(postgres_url) == {}
