"""PutScheduledAction, DescribeScheduledActions, DeleteScheduledAction through the real endpoint
with a real boto3 client, and the scheduled-action round (``scheduled_actions.run_due``) called on
the server's loop thread with a clock the test moves (the Env of test_autoscaling_api)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from portside.control import scheduled_actions
from tests.unit.test_autoscaling_api import ACCOUNT, DIMENSION, REGION, WEB, Env, env, expect_error, target_params

__all__ = ["env"]  # the fixture, imported to be used here

NOW = datetime.fromtimestamp(1_700_000_000, UTC)  # the Env clock's start: 2023-11-14T22:13:20Z
SOON = "at(2023-11-15T08:00:00)"


def put(e: Env, name: str = "morning", schedule: str = SOON, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"ScalableTargetAction": {"MinCapacity": 3, "MaxCapacity": 8}, **extra}
    return e.aas.put_scheduled_action(**target_params(), ScheduledActionName=name, Schedule=schedule, **params)


def described(e: Env, **filters: Any) -> list[dict[str, Any]]:
    return list(e.aas.describe_scheduled_actions(ServiceNamespace="ecs", **filters)["ScheduledActions"])


def run_at(e: Env, when: datetime) -> list[str]:
    e.clock.now = when.timestamp()
    return list(e.call(lambda: scheduled_actions.run_due(e.plane, e.clock.now)))


def activities(e: Env) -> list[dict[str, Any]]:
    return list(e.aas.describe_scaling_activities(ServiceNamespace="ecs", ResourceId=WEB)["ScalingActivities"])


# ----------------------------------------------------------------------------- the API


def test_put_describe_update_delete(env: Env) -> None:
    env.service(desired=2)
    env.register(MinCapacity=1, MaxCapacity=4)
    assert set(put(env, Timezone="Europe/Paris", EndTime=datetime(2024, 1, 1, tzinfo=UTC))) == {"ResponseMetadata"}
    [action] = described(env)
    assert action["ScheduledActionName"] == "morning"
    assert re.fullmatch(
        rf"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scheduledAction:[0-9a-f-]{{36}}:resource/ecs/{WEB}:scheduledActionName/morning",
        action["ScheduledActionARN"],
    )
    assert (action["ServiceNamespace"], action["ResourceId"], action["ScalableDimension"]) == ("ecs", WEB, DIMENSION)
    assert action["Schedule"] == SOON and action["Timezone"] == "Europe/Paris"
    assert action["ScalableTargetAction"] == {"MinCapacity": 3, "MaxCapacity": 8}
    assert action["EndTime"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert action["CreationTime"] == NOW and "StartTime" not in action
    assert not any(k.startswith("_") for k in action)

    # an update changes what it names and keeps the rest, and the ARN
    env.aas.put_scheduled_action(
        **target_params(), ScheduledActionName="morning", ScalableTargetAction={"MinCapacity": 2},
    )
    [updated] = described(env)
    assert updated["ScheduledActionARN"] == action["ScheduledActionARN"]
    assert updated["Schedule"] == SOON and updated["Timezone"] == "Europe/Paris"
    assert updated["ScalableTargetAction"] == {"MinCapacity": 2}

    env.aas.delete_scheduled_action(**target_params(), ScheduledActionName="morning")
    assert described(env) == []
    message = expect_error(
        "ObjectNotFoundException", env.aas.delete_scheduled_action, **target_params(), ScheduledActionName="morning"
    )
    assert message == (
        f"No scheduled action found for service namespace: ecs, resource ID: {WEB}, "
        f"scalable dimension: {DIMENSION}, scheduled action name: morning"
    )


def test_describe_filters_and_pages(env: Env) -> None:
    env.service("web")
    env.service("api")
    env.register()
    env.register("service/default/api")
    for name in ("a", "b", "c"):
        put(env, name)
    env.aas.put_scheduled_action(
        **target_params("service/default/api"), ScheduledActionName="a", Schedule="rate(1 hour)",
        ScalableTargetAction={"MaxCapacity": 5},
    )
    assert [a["ScheduledActionName"] for a in described(env)] == ["a", "b", "c", "a"]
    assert [a["ScheduledActionName"] for a in described(env, ResourceId=WEB)] == ["a", "b", "c"]
    assert [a["ResourceId"] for a in described(env, ScheduledActionNames=["a"])] == [WEB, "service/default/api"]
    assert described(env, ScalableDimension="dynamodb:table:ReadCapacityUnits") == []
    assert env.client("application-autoscaling", "eu-west-1").describe_scheduled_actions(
        ServiceNamespace="ecs")["ScheduledActions"] == []

    first = env.aas.describe_scheduled_actions(ServiceNamespace="ecs", ResourceId=WEB, MaxResults=2)
    assert [a["ScheduledActionName"] for a in first["ScheduledActions"]] == ["a", "b"]
    rest = env.aas.describe_scheduled_actions(
        ServiceNamespace="ecs", ResourceId=WEB, MaxResults=2, NextToken=first["NextToken"])
    assert [a["ScheduledActionName"] for a in rest["ScheduledActions"]] == ["c"] and "NextToken" not in rest
    expect_error("InvalidNextTokenException", env.aas.describe_scheduled_actions, ServiceNamespace="ecs", NextToken="x")
    expect_error("ValidationException", env.aas.describe_scheduled_actions, ServiceNamespace="ecs", MaxResults=51)
    # all pages together are everything, once
    names, token = [], None
    while True:
        page = env.aas.describe_scheduled_actions(ServiceNamespace="ecs", MaxResults=1, **({"NextToken": token} if token else {}))
        names += [(a["ResourceId"], a["ScheduledActionName"]) for a in page["ScheduledActions"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(names) == len(set(names)) == 4


def test_put_needs_a_registered_target(env: Env) -> None:
    env.service()
    message = expect_error(
        "ObjectNotFoundException", env.aas.put_scheduled_action, **target_params(), ScheduledActionName="x",
        Schedule=SOON, ScalableTargetAction={"MinCapacity": 1},
    )
    assert message.startswith("No scalable target registered for service namespace: ecs")
    expect_error(
        "ValidationException", env.aas.put_scheduled_action, ServiceNamespace="dynamodb", ResourceId="table/t",
        ScalableDimension="dynamodb:table:ReadCapacityUnits", ScheduledActionName="x", Schedule=SOON,
        ScalableTargetAction={"MinCapacity": 1},
    )


@pytest.mark.parametrize(("extra", "complaint"), [
    ({"Schedule": None}, "Schedule is required when creating a scheduled action."),
    ({"Schedule": "cron(0 9 * * * *)"}, "exactly one of day-of-month and day-of-week must be '?'"),
    ({"Schedule": "rate(5 weeks)"}, "rate(value unit)"),
    ({"Schedule": "at(2023-11-14T22:00:00)"}, "never fires after now: the scheduled action would never run."),
    ({"Schedule": "cron(0 9 * * ? 2020)"}, "never fires after now"),
    ({"Timezone": "Mars/Olympus"}, "Timezone 'Mars/Olympus' is not a valid IANA time zone name"),
    ({"Timezone": "../../../etc/passwd"}, "is not a valid IANA time zone name"),  # no file outside the tz database
    ({"Timezone": "/etc/localtime"}, "is not a valid IANA time zone name"),
    ({"ScalableTargetAction": {}}, "ScalableTargetAction must set MinCapacity, MaxCapacity or both."),
    ({"ScalableTargetAction": None}, "ScalableTargetAction must set MinCapacity, MaxCapacity or both."),
    ({"ScalableTargetAction": {"MinCapacity": -1}}, "ScalableTargetAction.MinCapacity must be greater than or equal to 0"),
    ({"ScalableTargetAction": {"MinCapacity": 5, "MaxCapacity": 4}}, "minimum capacity cannot be greater than maximum capacity (5 > 4)"),
    ({"StartTime": datetime(2024, 2, 1, tzinfo=UTC), "EndTime": datetime(2024, 1, 1, tzinfo=UTC)}, "StartTime must be before EndTime."),
    ({"EndTime": datetime(2023, 1, 1, tzinfo=UTC)}, "EndTime is in the past"),
    ({"StartTime": datetime(2023, 11, 16, tzinfo=UTC)}, "never fires after now within StartTime and EndTime"),
])
def test_invalid_puts_are_refused_by_name_and_change_nothing(env: Env, extra: dict[str, Any], complaint: str) -> None:
    env.service()
    env.register()
    params: dict[str, Any] = {
        "ScheduledActionName": "x", "Schedule": SOON, "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 2},
        **extra,
    }
    params = {k: v for k, v in params.items() if v is not None}
    message = expect_error("ValidationException", env.aas.put_scheduled_action, **target_params(), **params)
    assert complaint in message
    assert described(env) == []


def test_deregistering_the_target_deletes_its_scheduled_actions(env: Env) -> None:
    env.service()
    env.register()
    put(env)
    env.aas.deregister_scalable_target(**target_params())
    assert described(env) == []


# ----------------------------------------------------------------------------- the round


def test_an_action_runs_once_when_its_time_passes_and_clamps_the_desired_count(env: Env) -> None:
    env.service(desired=1)
    env.register(MinCapacity=1, MaxCapacity=4)
    put(env)  # at 08:00 UTC tomorrow: min 3, max 8
    assert run_at(env, datetime(2023, 11, 15, 7, 59, 59, tzinfo=UTC)) == []
    assert env.desired_count() == 1
    [arn] = run_at(env, datetime(2023, 11, 15, 8, 0, 3, tzinfo=UTC))
    assert arn == described(env)[0]["ScheduledActionARN"]
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (3, 8)
    assert env.desired_count() == 3
    desired, scheduled = activities(env)[:2]
    assert scheduled["Description"] == "Setting min capacity to 3 and max capacity to 8"
    assert scheduled["Cause"] == "scheduled action name morning was triggered"
    assert scheduled["StatusCode"] == "Successful"
    assert desired["Description"] == "Setting desired count to 3."
    assert desired["Cause"] == "minimum capacity was set to 3"
    # it does not run again
    assert run_at(env, datetime(2023, 11, 20, tzinfo=UTC)) == []
    assert len(activities(env)) == 2


def test_a_lower_maximum_scales_the_service_in(env: Env) -> None:
    env.service(desired=6)
    env.register(MinCapacity=1, MaxCapacity=10)
    env.aas.put_scheduled_action(
        **target_params(), ScheduledActionName="night", Schedule="cron(0 22 * * ? *)", Timezone="America/New_York",
        ScalableTargetAction={"MaxCapacity": 2},
    )
    # 22:00 in New York on 2023-11-14 is 03:00 UTC on the 15th
    assert run_at(env, datetime(2023, 11, 15, 2, 59, tzinfo=UTC)) == []
    assert len(run_at(env, datetime(2023, 11, 15, 3, 0, 1, tzinfo=UTC))) == 1
    assert env.desired_count() == 2
    assert activities(env)[1]["Description"] == "Setting max capacity to 2"
    assert activities(env)[0]["Cause"] == "maximum capacity was set to 2"
    # the next evening again (a recurring action stays)
    assert run_at(env, datetime(2023, 11, 15, 12, tzinfo=UTC)) == []
    assert len(run_at(env, datetime(2023, 11, 16, 3, 0, 1, tzinfo=UTC))) == 1


def test_a_suspended_target_skips_due_actions_and_does_not_run_them_on_resume(env: Env) -> None:
    env.service(desired=1)
    env.register(MinCapacity=1, MaxCapacity=4, SuspendedState={"ScheduledScalingSuspended": True})
    put(env)
    assert run_at(env, datetime(2023, 11, 15, 8, 1, tzinfo=UTC)) == []
    env.aas.register_scalable_target(**target_params(), SuspendedState={"ScheduledScalingSuspended": False})
    assert run_at(env, datetime(2023, 11, 15, 8, 2, tzinfo=UTC)) == []
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert env.desired_count() == 1


def test_a_minimum_above_the_targets_maximum_fails_as_an_activity(env: Env) -> None:
    env.service(desired=1)
    env.register(MinCapacity=1, MaxCapacity=4)
    env.aas.put_scheduled_action(
        **target_params(), ScheduledActionName="big", Schedule=SOON, ScalableTargetAction={"MinCapacity": 6},
    )
    assert len(run_at(env, datetime(2023, 11, 15, 8, 0, 1, tzinfo=UTC))) == 1
    [failed] = env.aas.describe_scaling_activities(ServiceNamespace="ecs")["ScalingActivities"]
    assert failed["StatusCode"] == "Failed"
    assert failed["StatusMessage"] == "Failed to set min capacity to 6: the minimum capacity would be above the maximum (6 > 4)."
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert env.desired_count() == 1


def test_missed_runs_while_down_run_once(env: Env) -> None:
    env.service(desired=1)
    env.register(MinCapacity=1, MaxCapacity=4)
    env.aas.put_scheduled_action(
        **target_params(), ScheduledActionName="hourly", Schedule="rate(1 hour)", ScalableTargetAction={"MinCapacity": 2},
    )
    assert len(run_at(env, datetime(2023, 11, 15, 8, tzinfo=UTC))) == 1  # ten hours late: once
    assert run_at(env, datetime(2023, 11, 15, 8, 13, tzinfo=UTC)) == []
    assert len(run_at(env, datetime(2023, 11, 15, 8, 14, tzinfo=UTC))) == 1  # on the grid from the put: 08:13:20


def test_a_target_holds_at_most_200_scheduled_actions(env: Env) -> None:
    env.service()
    env.register()
    for i in range(scheduled_actions.MAX_ACTIONS_PER_TARGET):
        put(env, f"a{i}")
    message = expect_error(
        "LimitExceededException", env.aas.put_scheduled_action, **target_params(), ScheduledActionName="one-more",
        Schedule=SOON, ScalableTargetAction={"MinCapacity": 1},
    )
    assert "at most 200 scheduled actions" in message
    put(env, "a0", "rate(1 day)")  # an update of one it has is not a new one
    assert len(described(env, MaxResults=50)) == 50


def test_a_put_between_the_rounds_read_and_write_wins(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # As when another replica answers a PutScheduledAction while the leader's round runs the action.
    env.service(desired=1)
    env.register(MinCapacity=1, MaxCapacity=4)
    put(env)
    read = env.store.scheduled_actions_everywhere

    def read_then_put() -> list[tuple[str, dict[str, Any]]]:
        found = read()
        scheduled_actions.put_scheduled_action(env.plane, REGION, {
            **target_params(), "ScheduledActionName": "morning", "Schedule": "at(2023-11-16T08:00:00)",
        })
        return found

    monkeypatch.setattr(env.store, "scheduled_actions_everywhere", read_then_put)
    assert run_at(env, datetime(2023, 11, 15, 8, 0, 1, tzinfo=UTC)) == []  # the round's work rolled back
    monkeypatch.undo()
    [target] = env.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4) and env.desired_count() == 1
    assert activities(env) == []
    [action] = described(env)
    assert action["Schedule"] == "at(2023-11-16T08:00:00)"  # the put is kept, and runs at its new time
    assert run_at(env, datetime(2023, 11, 15, 8, 0, 2, tzinfo=UTC)) == []
    assert len(run_at(env, datetime(2023, 11, 16, 8, 0, 1, tzinfo=UTC))) == 1
    assert env.desired_count() == 3
