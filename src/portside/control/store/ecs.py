"""ECS records: task definitions, clusters, container instances, tasks, services, client tokens."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from portside.control.store.database import StaleWrite
from portside.core.task import Task


def _versioned(row: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(row[0])
    body["_version"] = int(row[1])
    return body

class EcsRecords:
    db: Any
    #: Called with a task's container instance ARN after every task write (wakes agents' watches).
    task_watchers: list[Callable[[str], None]]

    # Database's
    logs_changes: bool
    def get_meta(self, key: str) -> Any: ...
    def put_meta(self, key: str, value: Any) -> None: ...
    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def record_change(self, topic: str, key: str = "") -> None: ...

    @property
    def current_revision(self) -> int:
        raise NotImplementedError

    # -- task definitions

    def latest_revision(self, region: str, family: str) -> int:
        row = self.db.execute(
            "SELECT MAX(revision) FROM task_definitions WHERE region=? AND family=?", (region, family)
        ).fetchone()
        return row[0] or 0

    def put_task_definition(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO task_definitions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (region, family, revision) "
            "DO UPDATE SET arn=excluded.arn, status=excluded.status, body=excluded.body",
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
                "HAVING SUM(CASE WHEN status='ACTIVE' THEN 1 ELSE 0 END) = 0",
                (region,),
            )
        families = sorted(r[0] for r in rows)
        return [f for f in families if prefix is None or f.startswith(prefix)]

    # -- clusters

    def put_cluster(self, region: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO clusters VALUES (?, ?, ?, ?) "
            "ON CONFLICT (region, name) DO UPDATE SET status=excluded.status, body=excluded.body",
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
            "INSERT INTO container_instances VALUES (?, ?, ?, ?) "
            "ON CONFLICT (arn) DO UPDATE SET region=excluded.region, cluster=excluded.cluster, body=excluded.body",
            (body["containerInstanceArn"], region, cluster, json.dumps(body)),
        )

    def get_container_instance(self, arn: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM container_instances WHERE arn=?", (arn,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_container_instances(self, region: str, cluster: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT body FROM container_instances WHERE region=? AND cluster=? ORDER BY arn", (region, cluster)
        )
        return [json.loads(r[0]) for r in rows]

    # -- tasks

    def put_task(self, task: Task, *, assigned: bool = True) -> None:
        """Store the task; ``assigned``: at this transaction's revision, telling its instance's watchers.

        Joins the transaction open, or opens one. An agent's report (``assigned=False``) keeps the
        task's revision: it is news to nobody that watches assignments.
        """
        body = json.dumps(task.to_json())
        with self.transaction():
            if not assigned:
                self.db.execute(
                    "UPDATE tasks SET desired_status=?, last_status=?, body=? WHERE arn=?",
                    (task.desired_status, int(task.last_status), body, task.arn),
                )
                if self.logs_changes:
                    self.record_change("report", task.arn)
                return
            self.db.execute(
                "INSERT INTO tasks (arn, region, cluster, family, started_by, container_instance, "
                "desired_status, last_status, created_at, body, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (arn) DO UPDATE SET region=excluded.region, cluster=excluded.cluster, "
                "family=excluded.family, started_by=excluded.started_by, "
                "container_instance=excluded.container_instance, desired_status=excluded.desired_status, "
                "last_status=excluded.last_status, created_at=excluded.created_at, body=excluded.body, "
                "rev=excluded.rev",
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
                    body,
                    self.current_revision,
                ),
            )
            if self.logs_changes:
                self.record_change("task", task.container_instance_arn or "")
        for watcher in self.task_watchers:
            watcher(task.container_instance_arn)

    def task_revision(self) -> int:
        """The revision of the last task write (0 for a new store).

        Commit order is revision order: every task written at this revision or before is visible.
        """
        row = self.db.execute("SELECT MAX(rev) FROM tasks").fetchone()
        return int(row[0] or 0)

    def tasks_changed_on(self, container_instance: str, since: int) -> list[Task]:
        """Tasks on one container instance written after revision ``since``, stopped ones included."""
        rows = self.db.execute(
            "SELECT body FROM tasks WHERE container_instance=? AND rev > ? ORDER BY rev", (container_instance, since)
        )
        return [Task.from_json(json.loads(r[0])) for r in rows]

    def live_tasks_in(self, region: str, cluster: str) -> list[Task]:
        """Tasks of one cluster not yet STOPPED."""
        rows = self.db.execute(
            "SELECT body FROM tasks WHERE region=? AND cluster=? AND last_status < 7 ORDER BY created_at, arn",
            (region, cluster),
        )
        return [Task.from_json(json.loads(r[0])) for r in rows]

    def deactivating_tasks(self) -> list[Task]:
        """Tasks being drained by their owner before they may stop (DEACTIVATING)."""
        rows = self.db.execute("SELECT body FROM tasks WHERE last_status = 4 ORDER BY created_at, arn")
        return [Task.from_json(json.loads(r[0])) for r in rows]

    def live_tasks_on(self, container_instance: str) -> list[Task]:
        """Tasks on one container instance not yet STOPPED."""
        rows = self.db.execute(
            "SELECT body FROM tasks WHERE container_instance=? AND last_status < 7 ORDER BY created_at, arn",
            (container_instance,),
        )
        return [Task.from_json(json.loads(r[0])) for r in rows]

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
        """Store the service; a conditional update when ``body`` was read from the store.

        A body read here carries the row's version (``_version``). Writing it back succeeds only if
        nobody wrote the service since (a replica's API call, another controller pass), and moves
        the version on; otherwise ``StaleWrite``, and nothing is written (its transaction rolls back).
        A body without a version (CreateService) is written as it is.
        """
        cluster = body["clusterArn"].rsplit("/", 1)[-1]
        expected = body.pop("_version", None)
        try:
            text = json.dumps(body)
        finally:
            if expected is not None:
                body["_version"] = expected
        columns = (body["serviceArn"], region, cluster, body["serviceName"], body["status"], body["createdAt"], text)
        with self.transaction():
            if expected is None:
                self.db.execute(
                    "INSERT INTO services (arn, region, cluster, name, status, created_at, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (arn) DO UPDATE SET "
                    "region=excluded.region, cluster=excluded.cluster, name=excluded.name, status=excluded.status, "
                    "created_at=excluded.created_at, body=excluded.body, version=services.version + 1",
                    columns,
                )
                row = self.db.execute("SELECT version FROM services WHERE arn=?", (body["serviceArn"],)).fetchone()
                body["_version"] = int(row[0])
                return
            cursor = self.db.execute(
                "UPDATE services SET region=?, cluster=?, name=?, status=?, created_at=?, body=?, version=version + 1 "
                "WHERE arn=? AND version=?",
                (*columns[1:], body["serviceArn"], expected),
            )
            if cursor.rowcount != 1:
                raise StaleWrite(f"service {body['serviceName']} changed since it was read (version {expected})")
        body["_version"] = expected + 1

    def get_service(self, arn: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body, version FROM services WHERE arn=?", (arn,)).fetchone()
        return _versioned(row) if row else None

    def list_services(self, region: str | None = None, cluster: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT body, version FROM services WHERE 1=1", []
        for column, value in (("region", region), ("cluster", cluster), ("status", status)):
            if value is not None:
                sql += f" AND {column}=?"
                args.append(value)
        return [_versioned(r) for r in self.db.execute(sql + " ORDER BY created_at, arn", args)]

    # -- idempotency tokens

    def get_client_token(self, region: str, scope: str, token: str) -> tuple[str, Any] | None:
        row = self.db.execute(
            "SELECT request, result FROM client_tokens WHERE region=? AND scope=? AND token=?",
            (region, scope, token),
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put_client_token(self, region: str, scope: str, token: str, request: str, result: Any, now: float) -> None:
        self.db.execute(
            "INSERT INTO client_tokens VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (region, scope, token) "
            "DO UPDATE SET request=excluded.request, result=excluded.result, created_at=excluded.created_at",
            (region, scope, token, request, json.dumps(result), now),
        )

    def all_container_instances(self) -> list[dict[str, Any]]:
        """Every container instance, of every region and cluster."""
        return [json.loads(r[0]) for r in self.db.execute("SELECT body FROM container_instances ORDER BY arn")]

    def container_instances_in_region(self, region: str) -> list[dict[str, Any]]:
        """Every container instance registered in ``region``, of every cluster."""
        rows = self.db.execute("SELECT body FROM container_instances WHERE region=?", (region,))
        return [json.loads(r[0]) for r in rows]
