"""CloudWatch metric alarms: PutMetricAlarm, DescribeAlarms, DescribeAlarmsForMetric, DeleteAlarms,
SetAlarmState, DescribeAlarmHistory, EnableAlarmActions, DisableAlarmActions (docs/alarms.md).

Alarms are AWS's MetricAlarm documents, per region, with ARN
``arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME``; members whose names start with ``_`` are
portside's own (the values of the last evaluation, for step scaling) and never rendered. The
leader's alarm loop (``control/controllers/alarms.py``) evaluates them with ``core/alarms.py``;
``AlarmActions`` naming an Application Auto Scaling policy make the scaler invoke it while the
alarm is in ALARM (``control/scaling_policies.py``). Actions of other kinds (SNS, EC2, ...) are
stored and shown, and each time they would run a history item says they were not executed.

Errors carry CloudWatch's codes: InvalidParameterValue, InvalidParameterCombination,
MissingParameter, ResourceNotFound, InvalidNextToken, InvalidFormat. Each names the member and
the rule, and a refused request changes nothing.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

from portside.control.cloudwatch import tags
from portside.control.cloudwatch.errors import CloudWatchError, invalid
from portside.control.cloudwatch.params import as_datetime, epoch
from portside.control.plane import ControlPlane
from portside.core import alarms as core

#: Alarms one region may hold: the leader evaluates every one each round (portside's limit).
MAX_ALARMS_PER_REGION = 5000
MAX_RECORDS = 100  # DescribeAlarms / DescribeAlarmHistory MaxRecords: 1-100
DEFAULT_DESCRIBE_RECORDS = 50  # DescribeAlarms' default page
MAX_EVALUATION_S = 24 * 3600  # Period x EvaluationPeriods: at most one day
TREAT_MISSING = tuple(t.value for t in core.MissingData)
HISTORY_TYPES = ("ConfigurationUpdate", "StateUpdate", "Action")
SCALING_POLICY_ARN = re.compile(r"^arn:aws:autoscaling:(?P<region>[a-z0-9-]+):\d{12}:scalingPolicy:")
#: Members of PutMetricAlarm kept as given (echoed by DescribeAlarms).
_ECHOED = (
    "AlarmDescription", "OKActions", "AlarmActions", "InsufficientDataActions", "MetricName", "Namespace",
    "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile",
)


def not_found(message: str) -> CloudWatchError:
    error = CloudWatchError("ResourceNotFound", message)
    error.status_hint = 404
    return error


def alarm_arn(plane: ControlPlane, region: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{plane.account}:alarm:{name}"


_TIMESTAMPS = ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp", "Timestamp")


def public(body: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a stored alarm or history item (timestamps as datetimes)."""
    return {k: as_datetime(v) if k in _TIMESTAMPS else v for k, v in body.items() if not k.startswith("_") and k != "Tags"}


# --------------------------------------------------------------------------- validation


def _rule(params: dict[str, Any]) -> None:
    """InvalidParameter* unless the request describes an alarm portside can evaluate."""
    if params.get("Metrics"):
        raise invalid("Metrics (metric math and multi-metric alarms) is not supported by portside; "
                      "give MetricName, Namespace and Statistic instead.")
    if params.get("ThresholdMetricId"):
        raise invalid("ThresholdMetricId (anomaly detection bands) is not supported by portside; give a Threshold.")
    for member in ("MetricName", "Namespace", "Period", "Threshold"):
        if params.get(member) is None:
            raise CloudWatchError("MissingParameter", f"The parameter {member} is required.")
    if params.get("Statistic") and params.get("ExtendedStatistic"):
        raise CloudWatchError("InvalidParameterCombination",
                              "Exactly one of the parameters Statistic and ExtendedStatistic must be specified, not both.")
    extended = params.get("ExtendedStatistic")
    if extended and not core.PERCENTILE.match(extended):
        raise invalid(f"The value {extended} for parameter ExtendedStatistic is not valid: "
                      "portside serves percentiles, p0 to p100 with up to two decimals (p99, p99.9).")
    low_samples = params.get("EvaluateLowSampleCountPercentile")
    if low_samples is not None and low_samples not in ("evaluate", "ignore"):
        raise invalid(f"The parameter EvaluateLowSampleCountPercentile must be evaluate or ignore; got {low_samples!r}.")
    if not params.get("Statistic") and not extended:
        raise CloudWatchError("MissingParameter", "One of the parameters Statistic and ExtendedStatistic must be specified.")
    operator = params["ComparisonOperator"]
    if operator in core.ANOMALY_DETECTION_OPERATORS:
        raise invalid(f"ComparisonOperator {operator} is for anomaly detection alarms, which portside does not support.")
    period, periods = params["Period"], params["EvaluationPeriods"]
    if period not in (10, 20, 30) and period % 60 != 0:
        raise invalid(f"The parameter Period must be 10, 20, 30 or a multiple of 60; got {period}.")
    if period * periods > MAX_EVALUATION_S:
        raise invalid(f"The product of Period ({period}) and EvaluationPeriods ({periods}) must not exceed {MAX_EVALUATION_S} seconds.")
    needed = params.get("DatapointsToAlarm")
    if needed is not None and needed > periods:
        raise invalid(f"DatapointsToAlarm ({needed}) must be less than or equal to EvaluationPeriods ({periods}).")
    treat = params.get("TreatMissingData")
    if treat is not None and treat not in TREAT_MISSING:
        raise invalid(f"The parameter TreatMissingData must be one of {', '.join(TREAT_MISSING)}; got {treat!r}.")
    for member in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        for action in params.get(member) or []:
            if not action.startswith("arn:"):
                raise invalid(f"Invalid arn syntax in {member}: {action!r}.")


def rule_of(body: dict[str, Any]) -> core.AlarmRule:
    return core.AlarmRule(
        statistic=body.get("Statistic") or body["ExtendedStatistic"], period_s=int(body["Period"]),
        evaluation_periods=int(body["EvaluationPeriods"]), threshold=float(body["Threshold"]),
        comparison=core.Comparison(body["ComparisonOperator"]), datapoints_to_alarm=body.get("DatapointsToAlarm"),
        treat_missing=core.MissingData(body.get("TreatMissingData", "missing")),
        ignore_low_sample_count=body.get("EvaluateLowSampleCountPercentile") == "ignore",
    )


def managing_policy(body: dict[str, Any]) -> str | None:
    """The ARN of the target tracking policy that owns this alarm, if one does."""
    return body.get("_ownedBy")


# --------------------------------------------------------------------------- operations


def put_metric_alarm(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    _rule(params)
    name = params["AlarmName"]
    now = plane.clock()
    with plane.store.transaction():
        existing = plane.store.alarm(region, name)
        if existing is not None and managing_policy(existing):
            raise invalid(f"Alarm {name} is managed by the target tracking scaling policy {managing_policy(existing)}; "
                          "change the policy instead.")
        if existing is None and plane.store.alarm_count(region) >= MAX_ALARMS_PER_REGION:
            raise CloudWatchError("LimitExceeded", f"The maximum number of alarms in a region ({MAX_ALARMS_PER_REGION}) "
                                  "has been reached; delete alarms first.")
        body = build_alarm(plane, region, params, now, existing)
        plane.store.put_alarm(region, body)
        verb = "updated" if existing else "created"
        record_history(plane, region, name, now, "ConfigurationUpdate", f'Alarm "{name}" {verb}',
                       {"version": "1.0", "type": "Update" if existing else "Create",
                        "updatedAlarm": public(body)})
    return {}


def build_alarm(plane: ControlPlane, region: str, params: dict[str, Any], now: float,
                existing: dict[str, Any] | None) -> dict[str, Any]:
    """The MetricAlarm document for a PutMetricAlarm request: an update keeps the state, a new
    alarm starts INSUFFICIENT_DATA ("Unchecked: Initial alarm creation")."""
    name = params["AlarmName"]
    body: dict[str, Any] = {
        "AlarmName": name,
        "AlarmArn": alarm_arn(plane, region, name),
        "AlarmConfigurationUpdatedTimestamp": now,
        "ActionsEnabled": params.get("ActionsEnabled", True),
        "OKActions": [], "AlarmActions": [], "InsufficientDataActions": [],
        "Dimensions": [],
        "TreatMissingData": "missing",
    }
    body.update({k: params[k] for k in _ECHOED if params.get(k) is not None})
    body["Threshold"] = float(body["Threshold"])
    if existing is None:
        if params.get("Tags"):
            body["Tags"] = tags.merged_tags([], params["Tags"])
    elif existing.get("Tags"):  # "If you are using this operation to update an existing alarm, any tags you
        body["Tags"] = existing["Tags"]  # specify in this parameter are ignored" (AWS): TagResource changes them
    if existing is None:
        body.update(StateValue="INSUFFICIENT_DATA", StateReason="Unchecked: Initial alarm creation",
                    StateUpdatedTimestamp=now, StateTransitionedTimestamp=now)
    else:
        for key in ("StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
            if key in existing:
                body[key] = existing[key]
    return body


def _select(plane: ControlPlane, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    names, prefix = params.get("AlarmNames"), params.get("AlarmNamePrefix")
    if names and prefix:
        raise CloudWatchError("InvalidParameterCombination", "AlarmNames and AlarmNamePrefix cannot be specified together.")
    bodies = plane.store.alarms(region)
    if names:
        bodies = [b for b in bodies if b["AlarmName"] in names]
    if prefix:
        bodies = [b for b in bodies if b["AlarmName"].startswith(prefix)]
    if params.get("StateValue"):
        bodies = [b for b in bodies if b["StateValue"] == params["StateValue"]]
    action_prefix = params.get("ActionPrefix")
    if action_prefix:
        bodies = [b for b in bodies if any(a.startswith(action_prefix) for k in ("OKActions", "AlarmActions",
                                                                             "InsufficientDataActions") for a in b[k])]
    return bodies


def describe_alarms(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("ChildrenOfAlarmName") or params.get("ParentsOfAlarmName"):
        raise invalid("ChildrenOfAlarmName and ParentsOfAlarmName are for composite alarms, which portside does not support.")
    types = params.get("AlarmTypes") or ["MetricAlarm"]
    bodies = _select(plane, region, params) if "MetricAlarm" in types else []
    items, token = _page(bodies, params, DEFAULT_DESCRIBE_RECORDS)
    result: dict[str, Any] = {"MetricAlarms": [public(b) for b in items]}
    if "CompositeAlarm" in types:
        result["CompositeAlarms"] = []
    if token:
        result["NextToken"] = token
    return result


def describe_alarms_for_metric(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    def matches(body: dict[str, Any]) -> bool:
        if (body.get("MetricName"), body.get("Namespace")) != (params["MetricName"], params["Namespace"]):
            return False
        for member in ("Statistic", "ExtendedStatistic", "Period", "Unit"):
            if params.get(member) is not None and body.get(member) != params[member]:
                return False
        # "If the metric has any associated dimensions, you must specify them": dimensions match exactly
        return _dims(body.get("Dimensions", [])) == _dims(params.get("Dimensions") or [])

    return {"MetricAlarms": [public(b) for b in plane.store.alarms(region) if matches(b)]}


def _dims(dimensions: list[dict[str, str]]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in dimensions}


def delete_alarms(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    names = list(dict.fromkeys(params["AlarmNames"]))
    with plane.store.transaction():
        bodies = {n: plane.store.alarm(region, n) for n in names}
        missing = [n for n, b in bodies.items() if b is None]
        if missing:
            raise not_found(f"{len(missing)} of the alarms named were not found: {', '.join(missing)}.")
        for name, body in bodies.items():
            if body is not None and managing_policy(body):
                raise invalid(f"Alarm {name} is managed by the target tracking scaling policy {managing_policy(body)}; "
                              "it is deleted with that policy (DeleteScalingPolicy).")
        for name in names:
            plane.store.delete_alarm(region, name)
    return {}


def set_alarm_state(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = params["AlarmName"]
    data = params.get("StateReasonData")
    if data is not None:
        try:
            json.loads(data)
        except ValueError as exc:
            raise CloudWatchError("InvalidFormat", f"StateReasonData is not valid JSON: {exc}") from exc
    with plane.store.transaction():
        body = plane.store.alarm(region, name)
        if body is None:
            raise not_found(f"Alarm {name} not found.")
        change_state(plane, region, body, params["StateValue"], params["StateReason"], data, plane.clock())
    return {}


def change_state(plane: ControlPlane, region: str, body: dict[str, Any], state: str, reason: str,
                 reason_data: str | None, now: float) -> None:
    """Move the alarm to ``state`` (inside the caller's transaction), with its history items."""
    old = {"stateValue": body["StateValue"], "stateReason": body["StateReason"]}
    transitioned = state != body["StateValue"]
    body.update(StateValue=state, StateReason=reason, StateUpdatedTimestamp=now)
    if reason_data is not None:
        body["StateReasonData"] = reason_data
    else:
        body.pop("StateReasonData", None)
    if transitioned:
        body["StateTransitionedTimestamp"] = now
    plane.store.put_alarm(region, body)
    new: dict[str, Any] = {"stateValue": state, "stateReason": reason}
    if reason_data is not None:
        new["stateReasonData"] = json.loads(reason_data)
    name = body["AlarmName"]
    record_history(plane, region, name, now, "StateUpdate", f"Alarm updated from {old['stateValue']} to {state}",
                   {"version": "1.0", "oldState": old, "newState": new})
    if transitioned and body.get("ActionsEnabled", True):
        member = {"ALARM": "AlarmActions", "OK": "OKActions"}.get(state, "InsufficientDataActions")
        for action in body.get(member, []):
            match = SCALING_POLICY_ARN.match(action)
            if match and match["region"] == region and plane.store.scaling_policy_by_arn(region, action):
                record_history(plane, region, name, now, "Action", f"Successfully executed action {action}",
                               {"actionState": "Succeeded", "notificationResource": action, "stateUpdateTimestamp": now})
                continue
            why = ("no Application Auto Scaling policy has this ARN in this region" if match
                   else "portside runs only Application Auto Scaling policy actions")
            record_history(plane, region, name, now, "Action", f"Failed to execute action {action}. Received error: \"{why}\"",
                           {"actionState": "Failed", "notificationResource": action, "stateUpdateTimestamp": now,
                            "error": why})


def record_history(plane: ControlPlane, region: str, name: str, at: float, kind: str, summary: str,
                   data: dict[str, Any]) -> None:
    plane.store.add_alarm_history(region, name, at, {
        "AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": at, "HistoryItemType": kind,
        "HistorySummary": summary, "HistoryData": json.dumps(data, separators=(",", ":"), default=_iso),
    })


def describe_alarm_history(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    kind = params.get("HistoryItemType")
    if kind is not None and kind not in HISTORY_TYPES:
        raise invalid(f"HistoryItemType must be one of {', '.join(HISTORY_TYPES)}; got {kind!r}.")
    types = params.get("AlarmTypes") or ["MetricAlarm"]
    start = _epoch(params.get("StartDate"), "StartDate") if params.get("StartDate") is not None else 0.0
    end = _epoch(params.get("EndDate"), "EndDate") if params.get("EndDate") is not None else float("inf")
    scan = params.get("ScanBy") or "TimestampDescending"
    items = plane.store.alarm_history(region, params.get("AlarmName"), kind, start, min(end, 1e12),
                                      newest_first=scan == "TimestampDescending") if "MetricAlarm" in types else []
    page, token = _page(items, params, MAX_RECORDS)
    result: dict[str, Any] = {"AlarmHistoryItems": [public(item) for item in page]}
    if token:
        result["NextToken"] = token
    return result


def set_actions_enabled(enabled: bool) -> Any:
    def operation(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
        names = list(dict.fromkeys(params["AlarmNames"]))
        with plane.store.transaction():
            bodies = [plane.store.alarm(region, n) for n in names]
            missing = [n for n, b in zip(names, bodies, strict=True) if b is None]
            if missing:
                raise not_found(f"Alarms not found: {', '.join(missing)}.")
            for body in bodies:
                assert body is not None
                body["ActionsEnabled"] = enabled
                plane.store.put_alarm(region, body)
        return {}

    operation.__name__ = "enable_alarm_actions" if enabled else "disable_alarm_actions"
    return operation


enable_alarm_actions = set_actions_enabled(True)
disable_alarm_actions = set_actions_enabled(False)


# --------------------------------------------------------------------------- helpers


def _iso(value: Any) -> str:
    """Timestamps inside HistoryData, as CloudWatch writes them (ISO 8601, UTC)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _epoch(value: Any, member: str) -> float:
    try:
        return epoch(value)
    except (ValueError, TypeError) as exc:
        raise invalid(f"The parameter {member} must be a timestamp; got {value!r}.") from exc


def _page(items: list[Any], params: dict[str, Any], default: int) -> tuple[list[Any], str | None]:
    size = params.get("MaxRecords") or default
    if not 1 <= size <= MAX_RECORDS:
        raise invalid(f"The parameter MaxRecords must be between 1 and {MAX_RECORDS}; got {size}.")
    token = params.get("NextToken")
    start = 0
    if token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(str(token).encode()))["o"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CloudWatchError("InvalidNextToken", "The NextToken is not valid.") from exc
        if start < 0:
            raise CloudWatchError("InvalidNextToken", "The NextToken is not valid.")
    page = items[start : start + size]
    following = start + size
    next_token = base64.urlsafe_b64encode(json.dumps({"o": following}).encode()).decode() if following < len(items) else None
    return page, next_token
