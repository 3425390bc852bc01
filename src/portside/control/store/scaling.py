"""Application Auto Scaling records: scalable targets, scaling policies, scaling activities.

Bodies are AWS-shaped JSON; rows are upserted in place, so rowid order is creation order (what
Describe* lists in). A target is keyed by (region, namespace, resource id, dimension).
"""

from __future__ import annotations

import json
from typing import Any

#: (service namespace, resource id, scalable dimension)
TargetKey = tuple[str, str, str]

_WHERE_TARGET = "region=? AND namespace=? AND resource_id=? AND dimension=?"


def _bodies(rows: Any) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in rows]


class ScalingRecords:
    db: Any

    # -- scalable targets

    def scalable_target(self, region: str, key: TargetKey) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT body FROM aas_scalable_targets WHERE {_WHERE_TARGET}", (region, *key)).fetchone()
        return json.loads(row[0]) if row else None

    def put_scalable_target(self, region: str, body: dict[str, Any]) -> None:
        """Add the target, or replace a registered one's body in place (its rowid stays)."""
        self.db.execute(
            "INSERT INTO aas_scalable_targets VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (region, namespace, resource_id, dimension) DO UPDATE SET body=excluded.body",
            (region, body["ServiceNamespace"], body["ResourceId"], body["ScalableDimension"], json.dumps(body)),
        )

    def scalable_targets(self, region: str, namespace: str, dimension: str | None) -> list[dict[str, Any]]:
        """The targets of ``namespace`` in ``region`` (of one dimension unless None), in creation order."""
        sql = "SELECT body FROM aas_scalable_targets WHERE region=? AND namespace=?"
        args: list[Any] = [region, namespace]
        if dimension:
            sql += " AND dimension=?"
            args.append(dimension)
        return _bodies(self.db.execute(sql + " ORDER BY rowid", args))

    def scalable_targets_everywhere(self, namespace: str, dimension: str) -> list[tuple[str, dict[str, Any]]]:
        """(region, target) of every region's targets of ``namespace`` and ``dimension``, in creation order."""
        rows = self.db.execute(
            "SELECT region, body FROM aas_scalable_targets WHERE namespace=? AND dimension=? ORDER BY rowid",
            (namespace, dimension),
        )
        return [(region, json.loads(body)) for region, body in rows]

    def delete_scalable_target(self, region: str, key: TargetKey) -> None:
        """Delete the target and its scaling policies (its activities stay)."""
        self.db.execute(f"DELETE FROM aas_scaling_policies WHERE {_WHERE_TARGET}", (region, *key))
        self.db.execute(f"DELETE FROM aas_scalable_targets WHERE {_WHERE_TARGET}", (region, *key))

    # -- scaling policies

    def policies_of(self, region: str, key: TargetKey) -> list[dict[str, Any]]:
        """A target's scaling policies in creation order."""
        return _bodies(
            self.db.execute(f"SELECT body FROM aas_scaling_policies WHERE {_WHERE_TARGET} ORDER BY rowid", (region, *key))
        )

    def put_scaling_policy(self, region: str, key: TargetKey, body: dict[str, Any]) -> None:
        """Add the policy, or replace the target's policy of the same name in place."""
        self.db.execute(
            "INSERT INTO aas_scaling_policies VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (region, namespace, resource_id, dimension, name) DO UPDATE SET arn=excluded.arn, body=excluded.body",
            (region, *key, body["PolicyName"], body["PolicyARN"], json.dumps(body)),
        )

    def scaling_policies(
        self, region: str, namespace: str, resource_id: str | None, dimension: str | None
    ) -> list[dict[str, Any]]:
        """The policies of ``namespace`` in ``region``, narrowed by resource and dimension unless None, in creation order."""
        sql = "SELECT body FROM aas_scaling_policies WHERE region=? AND namespace=?"
        args: list[Any] = [region, namespace]
        for column, value in (("resource_id", resource_id), ("dimension", dimension)):
            if value:
                sql += f" AND {column}=?"
                args.append(value)
        return _bodies(self.db.execute(sql + " ORDER BY rowid", args))

    def scaling_policy_by_arn(self, region: str, policy_arn: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT body FROM aas_scaling_policies WHERE region=? AND arn=?", (region, policy_arn)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def update_scaling_policy(self, region: str, policy_arn: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE aas_scaling_policies SET body=? WHERE region=? AND arn=?", (json.dumps(body), region, policy_arn)
        )

    def delete_scaling_policy(self, region: str, key: TargetKey, name: str) -> bool:
        """Delete the target's policy named ``name``; False when there was none."""
        cursor = self.db.execute(f"DELETE FROM aas_scaling_policies WHERE {_WHERE_TARGET} AND name=?", (region, *key, name))
        return cursor.rowcount > 0

    # -- scaling activities

    def scaling_activities(
        self, region: str, namespace: str, since: float, resource_id: str | None, dimension: str | None
    ) -> list[dict[str, Any]]:
        """Activities of ``namespace`` in ``region`` started at ``since`` or later, newest first."""
        sql = "SELECT body FROM aas_scaling_activities WHERE region=? AND namespace=? AND start_time>=?"
        args: list[Any] = [region, namespace, since]
        for column, value in (("resource_id", resource_id), ("dimension", dimension)):
            if value:
                sql += f" AND {column}=?"
                args.append(value)
        return _bodies(self.db.execute(sql + " ORDER BY start_time DESC, rowid DESC", args))

    def latest_activity(self, region: str, key: TargetKey) -> dict[str, Any] | None:
        """The target's newest activity."""
        row = self.db.execute(
            f"SELECT body FROM aas_scaling_activities WHERE {_WHERE_TARGET} ORDER BY start_time DESC, rowid DESC LIMIT 1",
            (region, *key),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def latest_activity_of_resource(self, region: str, resource_id: str) -> dict[str, Any] | None:
        """The newest activity of ``resource_id`` (of any namespace and dimension)."""
        row = self.db.execute(
            "SELECT body FROM aas_scaling_activities WHERE region=? AND resource_id=? "
            "ORDER BY start_time DESC, rowid DESC LIMIT 1",
            (region, resource_id),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def add_activity(self, region: str, key: TargetKey, activity: dict[str, Any], forget_before: float) -> None:
        """Store the activity, first forgetting every activity (of any target) started before ``forget_before``."""
        self.db.execute("DELETE FROM aas_scaling_activities WHERE start_time<?", (forget_before,))
        self.db.execute(
            "INSERT INTO aas_scaling_activities VALUES (?, ?, ?, ?, ?, ?, ?)",
            (activity["ActivityId"], region, *key, activity["StartTime"], json.dumps(activity)),
        )
