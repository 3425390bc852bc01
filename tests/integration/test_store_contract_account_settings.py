"""ECS account settings in the store (store/account_settings.py) on both backends."""

from __future__ import annotations

from tests.support.stores import StoreFactory

ROOT, ROLE = "arn:aws:iam::000000000000:root", "arn:aws:iam::000000000000:role/r"


def test_put_replaces_per_region_principal_and_name_and_delete_says_whether_it_removed(
    store_at: StoreFactory,
) -> None:
    store = store_at()
    with store.transaction():
        store.put_account_setting("us-east-1", ROOT, "awsvpcTrunking", "enabled")
        store.put_account_setting("us-east-1", ROOT, "awsvpcTrunking", "disabled")
        store.put_account_setting("us-east-1", ROLE, "awsvpcTrunking", "enabled")
        store.put_account_setting("eu-west-1", ROOT, "containerInsights", "enhanced")
    assert store.account_settings("us-east-1") == {
        (ROOT, "awsvpcTrunking"): "disabled",
        (ROLE, "awsvpcTrunking"): "enabled",
    }
    with store.transaction():
        assert store.delete_account_setting("us-east-1", ROLE, "awsvpcTrunking") is True
        assert store.delete_account_setting("us-east-1", ROLE, "awsvpcTrunking") is False
    assert store.account_settings("us-east-1") == {(ROOT, "awsvpcTrunking"): "disabled"}
    assert store.account_settings("eu-west-1") == {(ROOT, "containerInsights"): "enhanced"}
