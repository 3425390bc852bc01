"""SSM parameters and Secrets Manager secrets.

``ssm_parameters`` holds one row per (region, name, version): ``body`` is the parameter's
metadata as JSON (Type, Description, Tier, DataType, AllowedPattern, LastModifiedDate, Tags),
``value`` its value sealed by ``control/secrets_key.py``. The newest version is the parameter.

``sm_secrets`` holds one row per secret (``body``: its metadata as JSON, ``arn`` with AWS's
six-character suffix); ``sm_secret_versions`` one row per version, with its staging labels as
a JSON list and its value (``{"SecretString": ...}`` or ``{"SecretBinary": base64}``) sealed.

Nothing here ever sees a plaintext secret: callers seal before writing and open after reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_LATEST = "version = (SELECT MAX(q.version) FROM ssm_parameters q WHERE q.region = p.region AND q.name = p.name)"


@dataclass(frozen=True)
class StoredParameter:
    name: str
    version: int
    body: dict[str, Any]
    value: str  # sealed


@dataclass(frozen=True)
class StoredSecretVersion:
    version_id: str
    created: float
    stages: list[str]
    value: str  # sealed


def _parameter(row: Any) -> StoredParameter:
    name, version, body, value = row
    return StoredParameter(name, int(version), json.loads(body), value)


class SecretRecords:
    db: Any

    # -- SSM parameters

    def ssm_parameter(self, region: str, name: str, version: int | None = None) -> StoredParameter | None:
        """A parameter's newest version (or the version asked for); None when there is none."""
        if version is None:
            row = self.db.execute(
                f"SELECT name, version, body, value FROM ssm_parameters p WHERE region=? AND name=? AND {_LATEST}",
                (region, name),
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT name, version, body, value FROM ssm_parameters WHERE region=? AND name=? AND version=?",
                (region, name, version),
            ).fetchone()
        return _parameter(row) if row else None

    def put_ssm_parameter(self, region: str, parameter: StoredParameter, keep_versions: int) -> None:
        """Add a version; versions more than ``keep_versions`` older than it go."""
        self.db.execute(
            "INSERT INTO ssm_parameters (region, name, version, body, value) VALUES (?, ?, ?, ?, ?)",
            (region, parameter.name, parameter.version, json.dumps(parameter.body), parameter.value),
        )
        self.db.execute(
            "DELETE FROM ssm_parameters WHERE region=? AND name=? AND version <= ?",
            (region, parameter.name, parameter.version - keep_versions),
        )

    def ssm_versions(self, region: str, name: str) -> list[StoredParameter]:
        """Every kept version of a parameter, oldest first."""
        rows = self.db.execute(
            "SELECT name, version, body, value FROM ssm_parameters WHERE region=? AND name=? ORDER BY version",
            (region, name),
        )
        return [_parameter(row) for row in rows]

    def replace_ssm_body(self, region: str, name: str, version: int, body: dict[str, Any]) -> None:
        """Replace one version's metadata (its value stays)."""
        self.db.execute(
            "UPDATE ssm_parameters SET body=? WHERE region=? AND name=? AND version=?",
            (json.dumps(body), region, name, version),
        )

    def delete_ssm_parameter(self, region: str, name: str) -> bool:
        cursor = self.db.execute("DELETE FROM ssm_parameters WHERE region=? AND name=?", (region, name))
        return bool(cursor.rowcount)

    def ssm_parameters(self, region: str, prefix: str = "", after: str = "", limit: int | None = None) -> list[StoredParameter]:
        """Newest versions of the parameters whose name starts with ``prefix``, after ``after``, by name."""
        sql = (
            f"SELECT name, version, body, value FROM ssm_parameters p WHERE region=? AND {_LATEST} "
            "AND substr(name, 1, ?) = ? AND name > ? ORDER BY name"
        )
        args: list[Any] = [region, len(prefix), prefix, after]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_parameter(row) for row in self.db.execute(sql, args)]

    # -- Secrets Manager secrets

    def sm_secret(self, region: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM sm_secrets WHERE region=? AND name=?", (region, name)).fetchone()
        return json.loads(row[0]) if row else None

    def sm_secret_by_arn(self, arn: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM sm_secrets WHERE arn=?", (arn,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_sm_secret(self, region: str, body: dict[str, Any]) -> None:
        """Add the secret, or replace its metadata in place."""
        self.db.execute(
            "INSERT INTO sm_secrets (region, name, arn, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (region, name) DO UPDATE SET arn=excluded.arn, body=excluded.body",
            (region, body["Name"], body["ARN"], json.dumps(body)),
        )

    def delete_sm_secret(self, arn: str) -> None:
        """The secret and every version of it, for good."""
        self.db.execute("DELETE FROM sm_secret_versions WHERE arn=?", (arn,))
        self.db.execute("DELETE FROM sm_secrets WHERE arn=?", (arn,))

    def sm_secrets(self, region: str) -> list[dict[str, Any]]:
        """Every secret of ``region``, by name."""
        return [json.loads(r[0]) for r in self.db.execute("SELECT body FROM sm_secrets WHERE region=? ORDER BY name", (region,))]

    def sm_versions(self, arn: str) -> list[StoredSecretVersion]:
        """A secret's versions, oldest first."""
        rows = self.db.execute(
            "SELECT version_id, created, stages, value FROM sm_secret_versions WHERE arn=? ORDER BY created, version_id",
            (arn,),
        )
        return [StoredSecretVersion(v, float(c), json.loads(s), value) for v, c, s, value in rows]

    def put_sm_version(self, arn: str, version: StoredSecretVersion) -> None:
        self.db.execute(
            "INSERT INTO sm_secret_versions (arn, version_id, created, stages, value) VALUES (?, ?, ?, ?, ?)",
            (arn, version.version_id, version.created, json.dumps(version.stages), version.value),
        )

    def set_sm_version_stages(self, arn: str, version_id: str, stages: list[str]) -> None:
        self.db.execute(
            "UPDATE sm_secret_versions SET stages=? WHERE arn=? AND version_id=?", (json.dumps(stages), arn, version_id)
        )

    def delete_sm_version(self, arn: str, version_id: str) -> None:
        self.db.execute("DELETE FROM sm_secret_versions WHERE arn=? AND version_id=?", (arn, version_id))
