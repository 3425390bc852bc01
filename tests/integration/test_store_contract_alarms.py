"""The store's CloudWatch alarms and alarm history (store/alarms.py) on both backends."""

from __future__ import annotations

from portside.control.store.alarms import HISTORY_RETENTION_S
from tests.support.stores import StoreFactory

REGION = "us-east-1"


def alarm(name: str, state: str = "OK") -> dict[str, object]:
    return {"AlarmName": name, "StateValue": state}


def item(name: str, kind: str, summary: str) -> dict[str, object]:
    return {"AlarmName": name, "HistoryItemType": kind, "HistorySummary": summary}


def test_alarms_are_kept_by_region_and_listed_by_name(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        for name in ("zeta", "alpha", "mid"):
            store.put_alarm(REGION, alarm(name))
        store.put_alarm("eu-west-1", alarm("alpha", "ALARM"))
        store.put_alarm(REGION, alarm("mid", "ALARM"))  # replaced in place
    assert [a["AlarmName"] for a in store.alarms(REGION)] == ["alpha", "mid", "zeta"]
    assert store.alarm(REGION, "mid") == alarm("mid", "ALARM")
    assert store.alarm(REGION, "nope") is None
    assert [(r, a["AlarmName"]) for r, a in store.alarms_everywhere()] == [
        ("eu-west-1", "alpha"), (REGION, "alpha"), (REGION, "mid"), (REGION, "zeta"),
    ]
    with store.transaction():
        assert store.delete_alarm(REGION, "alpha") is True
        assert store.delete_alarm(REGION, "alpha") is False
    assert store.alarm("eu-west-1", "alpha") is not None


def test_history_is_ordered_filtered_trimmed_and_goes_with_its_alarm(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        store.put_alarm(REGION, alarm("a"))
        store.add_alarm_history(REGION, "a", 100.0, item("a", "ConfigurationUpdate", "created"))
        store.add_alarm_history(REGION, "a", 200.0, item("a", "StateUpdate", "to ALARM"))
        store.add_alarm_history(REGION, "a", 200.0, item("a", "Action", "executed"))
        store.add_alarm_history(REGION, "b", 150.0, item("b", "StateUpdate", "b to OK"))
    summaries = [h["HistorySummary"] for h in store.alarm_history(REGION, "a", None, 0, 1e12)]
    assert summaries == ["executed", "to ALARM", "created"]  # newest first; same time: last written first
    oldest = [h["HistorySummary"] for h in store.alarm_history(REGION, None, None, 0, 1e12, newest_first=False)]
    assert oldest == ["created", "b to OK", "to ALARM", "executed"]
    assert [h["HistorySummary"] for h in store.alarm_history(REGION, None, "StateUpdate", 0, 1e12)] == ["to ALARM", "b to OK"]
    assert [h["HistorySummary"] for h in store.alarm_history(REGION, None, None, 120, 180)] == ["b to OK"]
    with store.transaction():
        store.delete_alarm(REGION, "a")
    assert store.alarm_history(REGION, "a", None, 0, 1e12) == []
    with store.transaction():  # writing forgets what is older than the retention
        store.add_alarm_history(REGION, "b", 150.0 + HISTORY_RETENTION_S + 1, item("b", "StateUpdate", "later"))
    assert [h["HistorySummary"] for h in store.alarm_history(REGION, "b", None, 0, 1e12)] == ["later"]
