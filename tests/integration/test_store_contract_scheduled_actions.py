"""The store's scheduled actions (store/scheduled_actions.py) on both backends: upsert in place,
listing in creation order, filters, deletes."""

from __future__ import annotations

from typing import Any

from tests.support.stores import StoreFactory

REGION = "us-east-1"
WEB = ("ecs", "service/default/web", "ecs:service:DesiredCount")
API = ("ecs", "service/default/api", "ecs:service:DesiredCount")


def body(name: str, key: tuple[str, str, str], schedule: str = "rate(1 hour)") -> dict[str, Any]:
    return {"ScheduledActionName": name, "ServiceNamespace": key[0], "ResourceId": key[1], "ScalableDimension": key[2],
            "Schedule": schedule, "_nextFireAt": 1.5}


def test_scheduled_actions_upsert_list_and_delete(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        store.put_scheduled_action(REGION, WEB, body("a", WEB))
        store.put_scheduled_action(REGION, API, body("a", API))
        store.put_scheduled_action(REGION, WEB, body("b", WEB))
        store.put_scheduled_action("eu-west-1", WEB, body("c", WEB))
        store.put_scheduled_action(REGION, WEB, body("a", WEB, "rate(2 hours)"))  # in place
    names = [(b["ResourceId"], b["ScheduledActionName"]) for b in store.scheduled_actions(REGION, "ecs", None, None)]
    assert names == [(WEB[1], "a"), (API[1], "a"), (WEB[1], "b")]
    assert [b["ScheduledActionName"] for b in store.scheduled_actions(REGION, "ecs", WEB[1], WEB[2])] == ["a", "b"]
    assert store.scheduled_actions(REGION, "dynamodb", None, None) == []
    assert store.scheduled_action(REGION, WEB, "a") == body("a", WEB, "rate(2 hours)")
    assert store.scheduled_action(REGION, WEB, "z") is None
    assert [(r, b["ScheduledActionName"]) for r, b in store.scheduled_actions_everywhere()] == [
        (REGION, "a"), (REGION, "a"), (REGION, "b"), ("eu-west-1", "c"),
    ]
    with store.transaction():
        assert store.delete_scheduled_action(REGION, WEB, "b") is True
        assert store.delete_scheduled_action(REGION, WEB, "b") is False
        store.delete_scheduled_actions_of(REGION, API)
    assert [b["ScheduledActionName"] for b in store.scheduled_actions(REGION, "ecs", None, None)] == ["a"]


def test_a_replace_writes_only_over_the_body_it_read(store_at: StoreFactory) -> None:
    store = store_at()
    read = body("a", WEB)
    with store.transaction():
        store.put_scheduled_action(REGION, WEB, read)
    with store.transaction():
        assert store.replace_scheduled_action(REGION, WEB, read, {**read, "_nextFireAt": 2.5}) is True
    assert store.scheduled_action(REGION, WEB, "a") == {**read, "_nextFireAt": 2.5}
    with store.transaction():  # what was read is no longer there: nothing written
        assert store.replace_scheduled_action(REGION, WEB, read, {**read, "_nextFireAt": 9.0}) is False
    assert store.scheduled_action(REGION, WEB, "a") == {**read, "_nextFireAt": 2.5}
    with store.transaction():
        store.delete_scheduled_action(REGION, WEB, "a")
        assert store.replace_scheduled_action(REGION, WEB, {**read, "_nextFireAt": 2.5}, read) is False
    assert store.scheduled_action(REGION, WEB, "a") is None
