"""The alarm loop (control/controllers/alarms.py) and the alarm operations over a real SQLite store,
with a clock the test moves: metrics recorded in the store drive states, history and actions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control.cloudwatch import alarms
from portside.control.cloudwatch.errors import CloudWatchError
from portside.control.controllers.alarms import AlarmController
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.metric_data import StatisticSet

REGION = "us-east-1"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    store = Store(tmp_path / "portside.db")
    cfg = ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"})
    yield ControlPlane(cfg, store, f"arn:aws:ecs:{REGION}:000000000000:container-instance/default/x", clock=Clock())
    store.close()


def put(plane: ControlPlane, name: str, **extra: Any) -> None:
    params = {"AlarmName": name, "Namespace": "App", "MetricName": "Errors", "Statistic": "Sum", "Period": 60,
                  "EvaluationPeriods": 1, "Threshold": 3.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold"}
    params.update(extra)
    alarms.put_metric_alarm(plane, REGION, params)


def record(plane: ControlPlane, at: float, value: float, unit: str = "Count") -> None:
    with plane.store.transaction():
        plane.store.record_metric(REGION, "App", "Errors", {}, at, StatisticSet.of(value), unit)


def alarm(plane: ControlPlane, name: str) -> dict[str, Any]:
    body = plane.store.alarm(REGION, name)
    assert body is not None
    return body


def test_states_follow_the_stored_metric_and_only_changes_are_written(plane: ControlPlane) -> None:
    loop = AlarmController(plane, 60)
    put(plane, "errors")
    record(plane, START - 60, 5.0)
    loop.tick(START + 1)
    body = alarm(plane, "errors")
    assert body["StateValue"] == "ALARM" and body["_breachValues"] == [5.0]
    assert json.loads(body["StateReasonData"])["recentDatapoints"] == [5.0]
    updates = plane.store.alarm_history(REGION, "errors", "StateUpdate", 0, 1e12)
    loop.tick(START + 2)  # same data: nothing written
    assert plane.store.alarm_history(REGION, "errors", "StateUpdate", 0, 1e12) == updates
    record(plane, START, 1.0)
    loop.tick(START + 61)
    assert alarm(plane, "errors")["StateValue"] == "OK"


def test_a_unit_on_the_alarm_reads_only_datapoints_in_that_unit(plane: ControlPlane) -> None:
    put(plane, "in-seconds", Unit="Seconds")
    record(plane, START - 60, 5.0, unit="Count")
    AlarmController(plane, 60).tick(START + 1)
    assert alarm(plane, "in-seconds")["StateValue"] == "INSUFFICIENT_DATA"


def test_an_alarm_redefined_or_deleted_during_a_round_is_left_to_the_next(plane: ControlPlane) -> None:
    loop = AlarmController(plane, 60)
    put(plane, "moving")
    record(plane, START - 60, 5.0)
    stale = alarm(plane, "moving")
    plane.clock.now = START + 5  # type: ignore[attr-defined]
    put(plane, "moving", Threshold=100.0)  # redefined after the loop read it
    loop.evaluate(REGION, stale, START + 6)
    assert alarm(plane, "moving")["StateValue"] == "INSUFFICIENT_DATA"
    with plane.store.transaction():
        plane.store.delete_alarm(REGION, "moving")
    loop.evaluate(REGION, stale, START + 7)
    assert plane.store.alarm(REGION, "moving") is None


def test_the_number_of_alarms_in_a_region_is_bounded(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alarms, "MAX_ALARMS_PER_REGION", 2)
    put(plane, "one")
    put(plane, "two")
    put(plane, "two", Threshold=9.0)  # an update is not a new alarm
    with pytest.raises(CloudWatchError) as caught:
        put(plane, "three")
    assert caught.value.code == "LimitExceeded"
    assert plane.store.alarm(REGION, "three") is None
    assert plane.store.alarm_history(REGION, "three", None, 0, 1e12) == []


def test_an_update_keeps_the_state_and_says_so_in_history(plane: ControlPlane) -> None:
    put(plane, "kept")
    alarms.set_alarm_state(plane, REGION, {"AlarmName": "kept", "StateValue": "ALARM", "StateReason": "manual"})
    put(plane, "kept", Threshold=10.0)
    body = alarm(plane, "kept")
    assert (body["StateValue"], body["StateReason"], body["Threshold"]) == ("ALARM", "manual", 10.0)
    summaries = [h["HistorySummary"] for h in plane.store.alarm_history(REGION, "kept", "ConfigurationUpdate", 0, 1e12)]
    assert summaries == ['Alarm "kept" updated', 'Alarm "kept" created']
