"""ECS account settings as they were put: one value per region, principal and setting name."""

from __future__ import annotations

from typing import Any


class AccountSettingRecords:
    db: Any

    def put_account_setting(self, region: str, principal: str, name: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO ecs_account_settings VALUES (?, ?, ?, ?) "
            "ON CONFLICT (region, principal, name) DO UPDATE SET value=excluded.value",
            (region, principal, name, value),
        )

    def delete_account_setting(self, region: str, principal: str, name: str) -> bool:
        cursor = self.db.execute(
            "DELETE FROM ecs_account_settings WHERE region=? AND principal=? AND name=?",
            (region, principal, name),
        )
        return bool(cursor.rowcount)

    def account_settings(self, region: str) -> dict[tuple[str, str], str]:
        """(principal, name) -> value, of every setting put in ``region``."""
        rows = self.db.execute(
            "SELECT principal, name, value FROM ecs_account_settings WHERE region=?", (region,)
        )
        return {(p, n): v for p, n, v in rows}
