"""PutScalingPolicy, DescribeScalingPolicies, DeleteScalingPolicy, and the policies as
``core.autoscale`` values for the scaler loop (spec alb.md §4.2-§4.4).

Policies are stored as the request described them (DescribeScalingPolicies shows what was put,
as AWS does); defaults apply when :func:`core_policies` builds the core values: cooldowns 300 s for
ECS [CFN-TT], DisableScaleIn false, MetricAggregationType Average.

- **TargetTrackingScaling** on a PredefinedMetricSpecification: ECSServiceAverageCPUUtilization,
  ECSServiceAverageMemoryUtilization, or ALBRequestCountPerTarget with a ResourceLabel
  ``app/<lb-name>/<lb-id>/targetgroup/<tg-name>/<tg-id>`` naming a load balancer and a target group
  it forwards to (checked against the ELBv2 store). One policy per metric on a target ("provided
  that each of them uses a different metric" [AAS-TT]). AWS creates two managed CloudWatch alarms
  per policy; portside names them the same way (``TargetTracking-<ResourceId>-AlarmHigh-<uuid>``
  and ``-AlarmLow-``) and uses the names in activity causes. CustomizedMetricSpecification needs
  CloudWatch and is refused.
- **StepScaling**: AdjustmentType, StepAdjustments (checked against AWS's rules: no gap, no
  overlap, one open end each way), MinAdjustmentMagnitude (PercentChangeInCapacity only),
  Cooldown, MetricAggregationType. As on AWS, a CloudWatch alarm (control/cloudwatch/alarms.py)
  naming the policy's ARN in its AlarmActions invokes it while the alarm is in ALARM;
  :func:`set_step_alarm` can also bind an alarm evaluated over the scaler's own datapoints.
- **PredictiveScaling** is refused.
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

from portside.control.autoscaling import (
    DIMENSION,
    NAMESPACE,
    AutoScalingError,
    not_found,
    page,
    require_target,
    target_key,
    validation,
)
from portside.control.cloudwatch import managed_alarms
from portside.control.elbv2 import common as elb
from portside.control.elbv2.target_groups import usage
from portside.control.plane import ControlPlane
from portside.core import autoscale as core

MAX_DESCRIBE_POLICIES = 10  # DescribeScalingPolicies MaxResults: 1-10, default 10 [BC]
ECS_METRICS = (core.ECS_CPU_UTILIZATION, core.ECS_MEMORY_UTILIZATION, core.ALB_REQUEST_COUNT_PER_TARGET)
_RESOURCE_LABEL = re.compile(
    r"^app/(?P<lb>[A-Za-z0-9-]{1,32})/(?P<lb_id>[0-9a-f]{16})/targetgroup/(?P<tg>[A-Za-z0-9-]{1,32})/(?P<tg_id>[0-9a-f]{16})$"
)


def _policies(plane: ControlPlane, region: str, key: tuple[str, str, str]) -> list[dict[str, Any]]:
    return plane.store.policies_of(region, key)


def _public(body: dict[str, Any], invoking: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    if body["PolicyType"] == "StepScaling":  # the CloudWatch alarms whose AlarmActions name it, as AWS shows them
        out["Alarms"] = list(invoking.get(body["PolicyARN"], []))
        alarm = body.get("_alarm")
        if alarm:
            out["Alarms"].append({"AlarmName": alarm["name"], "AlarmARN": alarm["arn"]})
    return out


def _invoking(plane: ControlPlane, region: str) -> dict[str, list[dict[str, str]]]:
    """Policy ARN -> the alarms (name and ARN) naming it in their AlarmActions."""
    out: dict[str, list[dict[str, str]]] = {}
    for alarm in plane.store.alarms(region):
        for action in dict.fromkeys(alarm.get("AlarmActions", [])):
            out.setdefault(action, []).append({"AlarmName": alarm["AlarmName"], "AlarmARN": alarm["AlarmArn"]})
    return out


# --------------------------------------------------------------------------- operations


def put_scaling_policy(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = target_key(params)
    require_target(plane, region, key)
    name = params["PolicyName"]
    others = _policies(plane, region, key)
    existing = next((p for p in others if p["PolicyName"] == name), None)
    others = [p for p in others if p["PolicyName"] != name]
    policy_type = params.get("PolicyType") or (existing["PolicyType"] if existing else None)
    if policy_type is None:
        raise validation("PolicyType is required when creating a scaling policy.")
    if policy_type == "PredictiveScaling":
        raise validation("portside does not support PredictiveScaling policies; use TargetTrackingScaling or StepScaling.")
    now = plane.clock()
    body: dict[str, Any] = {
        "PolicyARN": existing["PolicyARN"] if existing else (
            f"arn:aws:autoscaling:{region}:{plane.account}:scalingPolicy:{uuid.uuid4()}:"
            f"resource/{key[0]}/{key[1]}:policyName/{name}"
        ),
        "PolicyName": name,
        "ServiceNamespace": key[0],
        "ResourceId": key[1],
        "ScalableDimension": key[2],
        "PolicyType": policy_type,
        "Alarms": [],
        "CreationTime": existing["CreationTime"] if existing else now,
    }
    if policy_type == "TargetTrackingScaling":
        if params.get("StepScalingPolicyConfiguration") is not None:
            raise validation("StepScalingPolicyConfiguration cannot be specified for a TargetTrackingScaling policy.")
        config = params.get("TargetTrackingScalingPolicyConfiguration")
        if config is None:
            raise validation("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy.")
        body["TargetTrackingScalingPolicyConfiguration"] = _target_tracking(plane, region, config, others)
        if existing and existing["PolicyType"] == policy_type:
            body["Alarms"] = existing["Alarms"]
        else:
            body["Alarms"] = [_alarm(plane, region, f"TargetTracking-{key[1]}-Alarm{side}-{uuid.uuid4()}") for side in ("High", "Low")]
    else:
        if params.get("TargetTrackingScalingPolicyConfiguration") is not None:
            raise validation("TargetTrackingScalingPolicyConfiguration cannot be specified for a StepScaling policy.")
        previous = existing.get("StepScalingPolicyConfiguration") if existing else None
        body["StepScalingPolicyConfiguration"] = _step_scaling(params.get("StepScalingPolicyConfiguration"), previous)
        if existing and existing.get("_alarm"):
            body["_alarm"] = existing["_alarm"]
    with plane.store.transaction():
        plane.store.put_scaling_policy(region, key, body)
        if existing and existing["PolicyType"] != policy_type:
            managed_alarms.delete_alarms_owned_by(plane, region, {body["PolicyARN"]})
        if policy_type == "TargetTrackingScaling":
            managed_alarms.put_target_tracking_alarms(plane, region, body)
    return {"PolicyARN": body["PolicyARN"], "Alarms": _public(body, _invoking(plane, region))["Alarms"]}


def describe_scaling_policies(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    bodies = plane.store.scaling_policies(
        region, params["ServiceNamespace"], params.get("ResourceId"), params.get("ScalableDimension")
    )
    names = params.get("PolicyNames")
    if names:
        bodies = [b for b in bodies if b["PolicyName"] in names]
    items, token = page(bodies, params, MAX_DESCRIBE_POLICIES)
    invoking = _invoking(plane, region)
    result: dict[str, Any] = {"ScalingPolicies": [_public(b, invoking) for b in items]}
    if token is not None:
        result["NextToken"] = token
    return result


def delete_scaling_policy(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key = (params["ServiceNamespace"], params["ResourceId"], params["ScalableDimension"])
    name = params["PolicyName"]
    with plane.store.transaction():
        body = next((p for p in _policies(plane, region, key) if p["PolicyName"] == name), None)
        gone = plane.store.delete_scaling_policy(region, key, name)
        if body is not None:
            managed_alarms.delete_alarms_owned_by(plane, region, {body["PolicyARN"]})
    if not gone:
        raise not_found(
            f"No scaling policy found for service namespace: {key[0]}, resource ID: {key[1]}, "
            f"scalable dimension: {key[2]}, policy name: {name}"
        )
    return {}


# --------------------------------------------------------------------------- validation


def _alarm(plane: ControlPlane, region: str, name: str) -> dict[str, str]:
    return {"AlarmName": name, "AlarmARN": f"arn:aws:cloudwatch:{region}:{plane.account}:alarm:{name}"}


def _metric_of(config: dict[str, Any]) -> str:
    spec = config["PredefinedMetricSpecification"]
    return core.metric_key(spec["PredefinedMetricType"], spec.get("ResourceLabel"))


def _target_tracking(plane: ControlPlane, region: str, config: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    if config.get("CustomizedMetricSpecification") is not None:
        raise validation(
            "portside does not support CustomizedMetricSpecification (there is no CloudWatch to read it from); "
            "use a PredefinedMetricSpecification."
        )
    spec = config.get("PredefinedMetricSpecification")
    if spec is None:
        raise validation("A PredefinedMetricSpecification is required for a target tracking scaling policy.")
    metric_type, label = spec["PredefinedMetricType"], spec.get("ResourceLabel")
    if metric_type not in ECS_METRICS:
        raise validation(
            f"Predefined metric type {metric_type} is not supported for scalable dimension ecs:service:DesiredCount; "
            f"use one of {', '.join(ECS_METRICS)}."
        )
    if metric_type == core.ALB_REQUEST_COUNT_PER_TARGET:
        if not label:
            raise validation("Resource label should be specified for predefined metric type ALBRequestCountPerTarget")
        _check_resource_label(plane, region, label)
    elif label:
        raise validation(f"A resource label can only be specified for predefined metric type ALBRequestCountPerTarget, not {metric_type}.")
    if config["TargetValue"] <= 0:
        raise validation(f"TargetValue must be greater than 0; got {config['TargetValue']}.")
    for member in ("ScaleOutCooldown", "ScaleInCooldown"):
        if config.get(member) is not None and config[member] < 0:
            raise validation(f"{member} must be greater than or equal to 0; got {config[member]}.")
    metric = _metric_of(config)
    for other in others:
        tracking = other.get("TargetTrackingScalingPolicyConfiguration")
        if tracking and _metric_of(tracking) == metric:
            raise validation(
                f"Scaling policy {other['PolicyName']} already tracks {metric} on this scalable target; "
                "each target tracking scaling policy must use a different metric."
            )
    keep = ("TargetValue", "PredefinedMetricSpecification", "ScaleOutCooldown", "ScaleInCooldown", "DisableScaleIn")
    out = {k: config[k] for k in keep if config.get(k) is not None}
    out["TargetValue"] = float(config["TargetValue"])
    out["PredefinedMetricSpecification"] = {k: v for k, v in spec.items() if k in ("PredefinedMetricType", "ResourceLabel")}
    return out


def _check_resource_label(plane: ControlPlane, region: str, label: str) -> None:
    match = _RESOURCE_LABEL.match(label)
    if match is None:
        raise validation(
            f"Resource label '{label}' is not valid: expected "
            "app/<load-balancer-name>/<load-balancer-id>/targetgroup/<target-group-name>/<target-group-id>"
        )
    lb_arn = elb.load_balancer_arn(region, plane.account, match["lb"], match["lb_id"])
    tg_arn = elb.target_group_arn(region, plane.account, match["tg"], match["tg_id"])
    if elb.get(plane, region, "loadbalancer", lb_arn) is None:
        raise validation(f"Resource label '{label}' names load balancer {lb_arn}, which does not exist.")
    if elb.get(plane, region, "targetgroup", tg_arn) is None:
        raise validation(f"Resource label '{label}' names target group {tg_arn}, which does not exist.")
    if lb_arn not in usage(plane, region).get(tg_arn, []):
        raise validation(f"Target group {tg_arn} is not associated with load balancer {lb_arn}.")


def _step_scaling(config: dict[str, Any] | None, previous: dict[str, Any] | None) -> dict[str, Any]:
    if config is None and previous is None:
        raise validation("StepScalingPolicyConfiguration is required for a StepScaling policy.")
    merged = {**(previous or {}), **{k: v for k, v in (config or {}).items() if v is not None}}
    kind = merged.get("AdjustmentType")
    if kind is None:
        raise validation("AdjustmentType is required if you are adding a new step scaling policy configuration.")
    steps = [_step_adjustment(s) for s in merged.get("StepAdjustments") or []]
    merged["StepAdjustments"] = steps
    if not steps:
        raise validation("StepAdjustments must contain at least one step adjustment.")
    _check_steps(steps)
    if kind == "ExactCapacity" and any(s["ScalingAdjustment"] < 0 for s in steps):
        raise validation("ScalingAdjustment must be 0 or more when AdjustmentType is ExactCapacity.")
    magnitude = merged.get("MinAdjustmentMagnitude")
    if magnitude is not None:
        if kind != "PercentChangeInCapacity":
            raise validation("MinAdjustmentMagnitude is only supported with AdjustmentType PercentChangeInCapacity.")
        if magnitude < 1:
            raise validation(f"MinAdjustmentMagnitude must be at least 1; got {magnitude}.")
    if merged.get("Cooldown") is not None and merged["Cooldown"] < 0:
        raise validation(f"Cooldown must be greater than or equal to 0; got {merged['Cooldown']}.")
    keep = ("AdjustmentType", "StepAdjustments", "MinAdjustmentMagnitude", "Cooldown", "MetricAggregationType")
    return {k: merged[k] for k in keep if merged.get(k) is not None}


def _step_adjustment(step: dict[str, Any]) -> dict[str, Any]:
    """A step adjustment with its bounds as doubles (the model's MetricScale), as AWS shows them."""
    out: dict[str, Any] = {}
    for member in ("MetricIntervalLowerBound", "MetricIntervalUpperBound"):
        if step.get(member) is not None:
            out[member] = float(step[member])
    out["ScalingAdjustment"] = step["ScalingAdjustment"]
    return out


def _check_steps(steps: list[dict[str, Any]]) -> None:
    """AWS's rules for step adjustments ([BC] StepAdjustment, [AAS-STEP])."""
    lows = [s.get("MetricIntervalLowerBound") for s in steps]
    highs = [s.get("MetricIntervalUpperBound") for s in steps]
    for low, high in zip(lows, highs, strict=True):
        if low is None and high is None:
            raise validation("The upper and lower bound can't be null in the same step adjustment.")
        if low is not None and high is not None and low >= high:
            raise validation(f"The lower bound ({low}) of a step adjustment must be less than its upper bound ({high}).")
    if lows.count(None) > 1:
        raise validation("Only one step adjustment can have a null lower bound.")
    if highs.count(None) > 1:
        raise validation("Only one step adjustment can have a null upper bound.")
    if any(low is not None and low < 0 for low in lows) and None not in lows:
        raise validation("If one step adjustment has a negative lower bound, there must be a step adjustment with a null lower bound.")
    if any(high is not None and high > 0 for high in highs) and None not in highs:
        raise validation("If one step adjustment has a positive upper bound, there must be a step adjustment with a null upper bound.")
    ordered = sorted(zip(lows, highs, strict=True), key=lambda b: float("-inf") if b[0] is None else b[0])
    for (_, high), (low, _) in itertools.pairwise(ordered):
        if high != low:
            raise validation("The ranges of your step adjustments can't overlap or have a gap.")


# --------------------------------------------------------------------------- for the scaler loop


def core_policies(
    plane: ControlPlane,
    region: str,
    resource_id: str,
    *,
    period_s: float = core.METRIC_PERIOD_S,
    scale_out_datapoints: int = core.SCALE_OUT_DATAPOINTS,
    scale_in_datapoints: int = core.SCALE_IN_DATAPOINTS,
) -> list[core.Policy]:
    """The target's policies as ``core.autoscale`` values, in creation order, defaults applied.

    The evaluation windows default to AWS's (3 and 15 one-minute datapoints) and can be shortened
    by the server's settings (spec §8.12: "Make evaluation windows configurable").
    """
    out: list[core.Policy] = []
    firing = _firing_alarms(plane, region)
    for body in _policies(plane, region, (NAMESPACE, resource_id, DIMENSION)):
        tracking = body.get("TargetTrackingScalingPolicyConfiguration")
        if tracking is not None:
            alarms = [a["AlarmName"] for a in body["Alarms"]]
            out.append(
                core.TargetTrackingPolicy(
                    name=body["PolicyName"],
                    metric=_metric_of(tracking),
                    target_value=float(tracking["TargetValue"]),
                    scale_out_cooldown_s=float(tracking.get("ScaleOutCooldown", core.DEFAULT_COOLDOWN_S)),
                    scale_in_cooldown_s=float(tracking.get("ScaleInCooldown", core.DEFAULT_COOLDOWN_S)),
                    disable_scale_in=bool(tracking.get("DisableScaleIn", False)),
                    alarm_high=next((a for a in alarms if "-AlarmHigh-" in a), ""),
                    alarm_low=next((a for a in alarms if "-AlarmLow-" in a), ""),
                    period_s=period_s,
                    scale_out_datapoints=scale_out_datapoints,
                    scale_in_datapoints=scale_in_datapoints,
                )
            )
            continue
        step = body.get("StepScalingPolicyConfiguration")
        if step is None:
            continue
        alarm = body.get("_alarm")
        out.append(
            core.StepScalingPolicy(
                name=body["PolicyName"],
                adjustment_type=core.AdjustmentType(step["AdjustmentType"]),
                step_adjustments=tuple(
                    core.StepAdjustment(s["ScalingAdjustment"], s.get("MetricIntervalLowerBound"), s.get("MetricIntervalUpperBound"))
                    for s in step["StepAdjustments"]
                ),
                alarm=core.StepAlarm(
                    alarm["name"], alarm["metric"], alarm["threshold"], core.ComparisonOperator(alarm["comparison"]),
                    alarm["evaluation_periods"], alarm["datapoints_to_alarm"], alarm["period_s"],
                ) if alarm else None,
                firing=firing.get(body["PolicyARN"]),
                min_adjustment_magnitude=step.get("MinAdjustmentMagnitude"),
                cooldown_s=float(step.get("Cooldown", core.DEFAULT_COOLDOWN_S)),
                aggregation=core.MetricAggregation(step.get("MetricAggregationType", "Average")),
            )
        )
    return out


def _firing_alarms(plane: ControlPlane, region: str) -> dict[str, core.AlarmFiring]:
    """Policy ARN -> the first alarm (by name) in ALARM, with its actions enabled, that names it."""
    out: dict[str, core.AlarmFiring] = {}
    for alarm in plane.store.alarms(region):
        if alarm["StateValue"] != "ALARM" or not alarm.get("ActionsEnabled", True):
            continue
        fired = core.AlarmFiring(
            alarm["AlarmName"], float(alarm["Threshold"]), alarm["ComparisonOperator"].startswith("Greater"),
            tuple(alarm.get("_breachValues", ())),
        )
        for action in alarm.get("AlarmActions", []):
            out.setdefault(action, fired)
    return out


def set_step_alarm(plane: ControlPlane, region: str, policy_arn: str, alarm: core.StepAlarm | None) -> None:
    """Bind (or with None, unbind) the alarm that invokes the step scaling policy ``policy_arn``:
    what a CloudWatch PutMetricAlarm naming the policy in AlarmActions does on AWS."""
    body = plane.store.scaling_policy_by_arn(region, policy_arn)
    if body is None:
        raise not_found(f"No scaling policy found with ARN {policy_arn}")
    if body["PolicyType"] != "StepScaling":
        raise validation(f"Scaling policy {body['PolicyName']} is a {body['PolicyType']} policy; only StepScaling policies take an alarm.")
    if alarm is None:
        body.pop("_alarm", None)
    else:
        if alarm.evaluation_periods < 1 or not 1 <= (alarm.datapoints_to_alarm or alarm.evaluation_periods) <= alarm.evaluation_periods:
            raise AutoScalingError("ValidationException", "DatapointsToAlarm must be between 1 and EvaluationPeriods.")
        body["_alarm"] = {
            "name": alarm.name,
            "arn": f"arn:aws:cloudwatch:{region}:{plane.account}:alarm:{alarm.name}",
            "metric": alarm.metric,
            "threshold": alarm.threshold,
            "comparison": alarm.comparison.value,
            "evaluation_periods": alarm.evaluation_periods,
            "datapoints_to_alarm": alarm.datapoints_to_alarm,
            "period_s": alarm.period_s,
        }
    with plane.store.transaction():
        plane.store.update_scaling_policy(region, policy_arn, body)

