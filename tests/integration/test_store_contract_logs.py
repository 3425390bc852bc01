"""The store's CloudWatch Logs records (store/logs.py) on both backends: one event per key, order, retention."""

from __future__ import annotations

from portside.control.store.logs import NewEvent
from tests.support.stores import StoreFactory

REGION = "us-east-1"


def test_an_event_key_is_stored_once_however_often_it_comes(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        assert store.add_log_group(REGION, "/g", 1)
        assert not store.add_log_group(REGION, "/g", 2)
        assert store.add_log_stream(REGION, "/g", "s", 1)
        batch = [NewEvent("100:0", 100, "a"), NewEvent("100:1", 100, "b"), NewEvent("200:0", 200, "c")]
        assert store.add_log_events(REGION, "/g", "s", batch[:2], ingested=5) == 2
    with store.transaction():  # the same batch again (an answer was lost), and one more
        assert store.add_log_events(REGION, "/g", "s", batch, ingested=6) == 1
    events = store.log_events(REGION, "/g", ["s"])
    assert [(e.ts, e.message) for e in events] == [(100, "a"), (100, "b"), (200, "c")]
    stream = store.get_log_stream(REGION, "/g", "s")
    assert stream is not None and (stream.first_event, stream.last_event, stream.stored_bytes) == (100, 200, 3)
    assert store.log_events("eu-west-1", "/g", ["s"]) == []  # groups are per region
    after = store.log_events(REGION, "/g", None, after=(events[0].ts, events[0].position))
    assert [e.message for e in after] == ["b", "c"]
    newest = store.log_events(REGION, "/g", None, newest_first=True, limit=2)
    assert [e.message for e in newest] == ["c", "b"]


def test_retention_trims_old_events_and_deleting_a_group_takes_its_streams(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        store.add_log_group(REGION, "/g", 1)
        store.add_log_stream(REGION, "/g", "s", 1)
        store.add_log_events(REGION, "/g", "s", [NewEvent("1:0", 1_000, "old"), NewEvent("2:0", 9_000, "new")], 10)
        store.set_log_retention(REGION, "/g", 1)
    assert [(g.name, g.retention_days) for g in store.all_log_groups()] == [("/g", 1)]
    with store.transaction():
        assert store.trim_log_events(REGION, "/g", before=5_000) == 1
    assert [e.message for e in store.log_events(REGION, "/g", None)] == ["new"]
    with store.transaction():
        assert store.delete_log_group(REGION, "/g")
    assert store.get_log_group(REGION, "/g") is None and store.log_streams(REGION, "/g") == []
    assert store.log_events(REGION, "/g", None) == []
