"""The state store: SQLite in the state directory.

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

from portside.core.task import Task

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_definitions (
  region TEXT NOT NULL, family TEXT NOT NULL, revision INTEGER NOT NULL,
  arn TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, family, revision));
CREATE TABLE IF NOT EXISTS clusters (
  region TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, name));
CREATE TABLE IF NOT EXISTS container_instances (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, family TEXT NOT NULL,
  started_by TEXT, container_instance TEXT, desired_status TEXT NOT NULL,
  last_status INTEGER NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_cluster ON tasks (region, cluster, created_at);
CREATE INDEX IF NOT EXISTS tasks_live ON tasks (last_status);
CREATE TABLE IF NOT EXISTS services (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, cluster TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  created_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS services_by_cluster ON services (region, cluster, created_at);
CREATE TABLE IF NOT EXISTS client_tokens (
  region TEXT NOT NULL, scope TEXT NOT NULL, token TEXT NOT NULL, request TEXT NOT NULL,
  result TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (region, scope, token));
-- ELBv2 (control/elbv2): AWS-shaped records as JSON; rows are updated in place, so rowid order is
-- creation order (what Describe* pages through).
CREATE TABLE IF NOT EXISTS elb_load_balancers (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS elb_load_balancers_by_name ON elb_load_balancers (region, name);
CREATE TABLE IF NOT EXISTS elb_target_groups (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS elb_target_groups_by_name ON elb_target_groups (region, name);
CREATE TABLE IF NOT EXISTS elb_listeners (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, load_balancer_arn TEXT NOT NULL, port INTEGER NOT NULL,
  body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_listeners_by_lb ON elb_listeners (load_balancer_arn);
CREATE TABLE IF NOT EXISTS elb_rules (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, listener_arn TEXT NOT NULL, priority INTEGER NOT NULL,
  is_default INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_rules_by_listener ON elb_rules (listener_arn, priority);
CREATE TABLE IF NOT EXISTS elb_targets (
  target_group_arn TEXT NOT NULL, target_id TEXT NOT NULL, port INTEGER NOT NULL, region TEXT NOT NULL,
  availability_zone TEXT, draining INTEGER NOT NULL, drain_deadline REAL, registered_at REAL NOT NULL,
  PRIMARY KEY (target_group_arn, target_id, port));
CREATE INDEX IF NOT EXISTS elb_targets_draining ON elb_targets (draining, drain_deadline);
CREATE TABLE IF NOT EXISTS elb_tags (
  arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, region TEXT NOT NULL,
  PRIMARY KEY (arn, key));
CREATE TABLE IF NOT EXISTS elb_certificates (
  arn TEXT PRIMARY KEY, region TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS elb_certificates_by_name ON elb_certificates (region, name);
-- Application Auto Scaling (control/autoscaling.py): AWS-shaped records as JSON, rowid order is
-- creation order; activities are kept six weeks.
CREATE TABLE IF NOT EXISTS aas_scalable_targets (
  region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL, dimension TEXT NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (region, namespace, resource_id, dimension));
CREATE TABLE IF NOT EXISTS aas_scaling_policies (
  region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL, dimension TEXT NOT NULL,
  name TEXT NOT NULL, arn TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (region, namespace, resource_id, dimension, name));
CREATE TABLE IF NOT EXISTS aas_scaling_activities (
  activity_id TEXT PRIMARY KEY, region TEXT NOT NULL, namespace TEXT NOT NULL, resource_id TEXT NOT NULL,
  dimension TEXT NOT NULL, start_time REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aas_activities_by_target
  ON aas_scaling_activities (region, namespace, resource_id, dimension, start_time);
"""


#: The database and its -wal/-shm files: owner only, whatever the umask (they hold every task
#: definition, environment variables included).
DB_FILE_MODE = 0o600


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        _create_private(path)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._depth = 0

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

    # -- task definitions

    def latest_revision(self, region: str, family: str) -> int:
        row = self.db.execute(
            "SELECT MAX(revision) FROM task_definitions WHERE region=? AND family=?", (region, family)
        ).fetchone()
        return row[0] or 0

    def put_task_definition(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO task_definitions VALUES (?, ?, ?, ?, ?, ?)",
            (region, body["family"], body["revision"], body["taskDefinitionArn"], body["status"], json.dumps(body)),
        )

    def get_task_definition(self, region: str, family: str, revision: int | None) -> dict[str, Any] | None:
        if revision is None:
            row = self.db.execute(
                "SELECT body FROM task_definitions WHERE region=? AND family=? AND status='ACTIVE' "
                "ORDER BY revision DESC LIMIT 1",
                (region, family),
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT body FROM task_definitions WHERE region=? AND family=? AND revision=?",
                (region, family, revision),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def list_task_definitions(self, region: str, family: str | None, status: str, descending: bool) -> list[str]:
        sql = "SELECT arn FROM task_definitions WHERE region=?"
        args: list[Any] = [region]
        if family is not None:
            sql += " AND family=?"
            args.append(family)
        if status != "ALL":
            sql += " AND status=?"
            args.append(status)
        order = "DESC" if descending else "ASC"
        sql += f" ORDER BY family {order}, revision {order}"
        return [r[0] for r in self.db.execute(sql, args)]

    def list_families(self, region: str, prefix: str | None, status: str) -> list[str]:
        if status == "ALL":
            rows = self.db.execute("SELECT DISTINCT family FROM task_definitions WHERE region=?", (region,))
        elif status == "ACTIVE":
            rows = self.db.execute(
                "SELECT DISTINCT family FROM task_definitions WHERE region=? AND status='ACTIVE'", (region,)
            )
        else:  # INACTIVE: families with no active revision left
            rows = self.db.execute(
                "SELECT family FROM task_definitions WHERE region=? GROUP BY family "
                "HAVING SUM(status='ACTIVE') = 0",
                (region,),
            )
        families = sorted(r[0] for r in rows)
        return [f for f in families if prefix is None or f.startswith(prefix)]

    # -- clusters

    def put_cluster(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO clusters VALUES (?, ?, ?, ?)",
            (region, body["clusterName"], body["status"], json.dumps(body)),
        )

    def get_cluster(self, region: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM clusters WHERE region=? AND name=?", (region, name)).fetchone()
        return json.loads(row[0]) if row else None

    def list_clusters(self, region: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT body FROM clusters WHERE region=? AND status='ACTIVE' ORDER BY name", (region,)
        )
        return [json.loads(r[0]) for r in rows]

    # -- container instances

    def put_container_instance(self, region: str, cluster: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO container_instances VALUES (?, ?, ?, ?)",
            (body["containerInstanceArn"], region, cluster, json.dumps(body)),
        )

    def list_container_instances(self, region: str, cluster: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT body FROM container_instances WHERE region=? AND cluster=? ORDER BY arn", (region, cluster)
        )
        return [json.loads(r[0]) for r in rows]

    # -- tasks

    def put_task(self, task: Task) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.arn,
                task.region,
                task.cluster,
                task.family,
                task.started_by,
                task.container_instance_arn,
                task.desired_status,
                int(task.last_status),
                task.created_at,
                json.dumps(task.to_json()),
            ),
        )

    def get_task(self, arn: str) -> Task | None:
        row = self.db.execute("SELECT body FROM tasks WHERE arn=?", (arn,)).fetchone()
        return Task.from_json(json.loads(row[0])) if row else None

    def find_tasks(
        self,
        region: str,
        cluster: str,
        *,
        family: str | None = None,
        started_by: str | None = None,
        container_instance: str | None = None,
        desired_status: str | None = None,
    ) -> list[Task]:
        sql = "SELECT body FROM tasks WHERE region=? AND cluster=?"
        args: list[Any] = [region, cluster]
        for column, value in (
            ("family", family),
            ("started_by", started_by),
            ("container_instance", container_instance),
            ("desired_status", desired_status),
        ):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        sql += " ORDER BY created_at, arn"
        return [Task.from_json(json.loads(r[0])) for r in self.db.execute(sql, args)]

    def live_tasks(self) -> list[Task]:
        """Every task not yet STOPPED, in every region: what the agent must look after."""
        rows = self.db.execute("SELECT body FROM tasks WHERE last_status < 7 ORDER BY created_at, arn")
        return [Task.from_json(json.loads(r[0])) for r in rows]

    def count_tasks(self, region: str, cluster: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT last_status, COUNT(*) FROM tasks WHERE region=? AND cluster=? AND last_status < 7 "
            "GROUP BY last_status",
            (region, cluster),
        )
        counts = {"running": 0, "pending": 0, "stopping": 0}
        for status, n in rows:
            counts["running" if status == 3 else "pending" if status < 3 else "stopping"] += n
        return counts

    def stopped_tasks_before(self, cutoff: float) -> list[Task]:
        rows = self.db.execute("SELECT body FROM tasks WHERE last_status = 7")
        tasks = [Task.from_json(json.loads(r[0])) for r in rows]
        return [t for t in tasks if t.timestamps.get("stoppedAt", 0) < cutoff]

    # -- services

    def put_service(self, region: str, body: dict[str, Any]) -> None:
        cluster = body["clusterArn"].rsplit("/", 1)[-1]
        self.db.execute(
            "INSERT OR REPLACE INTO services VALUES (?, ?, ?, ?, ?, ?, ?)",
            (body["serviceArn"], region, cluster, body["serviceName"], body["status"], body["createdAt"], json.dumps(body)),
        )

    def get_service(self, arn: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM services WHERE arn=?", (arn,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_services(self, region: str | None = None, cluster: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT body FROM services WHERE 1=1", []
        for column, value in (("region", region), ("cluster", cluster), ("status", status)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        return [json.loads(r[0]) for r in self.db.execute(sql + " ORDER BY created_at, arn", args)]

    # -- idempotency tokens

    def get_client_token(self, region: str, scope: str, token: str) -> tuple[str, Any] | None:
        row = self.db.execute(
            "SELECT request, result FROM client_tokens WHERE region=? AND scope=? AND token=?",
            (region, scope, token),
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put_client_token(self, region: str, scope: str, token: str, request: str, result: Any, now: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO client_tokens VALUES (?, ?, ?, ?, ?, ?)",
            (region, scope, token, request, json.dumps(result), now),
        )


def _create_private(path: Path) -> None:
    """Create the database file owner-only before SQLite opens it (and tighten an existing one).

    SQLite creates its -wal and -shm files with the main file's permissions, so they follow.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
    try:
        os.fchmod(fd, DB_FILE_MODE)
    finally:
        os.close(fd)
