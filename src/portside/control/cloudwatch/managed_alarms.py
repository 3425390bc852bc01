"""The two CloudWatch alarms a target tracking scaling policy creates and owns, as AWS names them:
``TargetTracking-<ResourceId>-AlarmHigh-<uuid>`` and ``-AlarmLow-<uuid>``.

They are real alarm rows: DescribeAlarms lists them, the alarm loop evaluates them over the
policy's metric in AWS's namespace (AWS/ECS CPUUtilization or MemoryUtilization per service,
Average; AWS/ApplicationELB RequestCountPerTarget per target group and load balancer, Sum), and they are deleted
with their policy (DeleteScalingPolicy, DeregisterScalableTarget). PutMetricAlarm and
DeleteAlarms refuse to change them (AWS asks users not to: "DO NOT EDIT OR DELETE").

AWS's managed high alarm is 3 of 3 one-minute datapoints above the target, the low alarm 15 of 15
below 90 % of it. The scaling decision of target tracking stays with ``core/autoscale.py`` (which
uses the same windows over the scaler's per-period measurements); these alarms show its view in
CloudWatch's terms.
"""

from __future__ import annotations

from typing import Any

from portside.control.cloudwatch import alarms
from portside.control.plane import ControlPlane
from portside.core import autoscale

_CPU_MEMORY = {
    autoscale.ECS_CPU_UTILIZATION: "CPUUtilization",
    autoscale.ECS_MEMORY_UTILIZATION: "MemoryUtilization",
}


def _metric(resource_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    metric_type = spec["PredefinedMetricType"]
    if metric_type == autoscale.ALB_REQUEST_COUNT_PER_TARGET:
        parts = spec["ResourceLabel"].split("/")  # app/<lb>/<id>/targetgroup/<name>/<id>
        return {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCountPerTarget", "Statistic": "Sum",
                "Dimensions": [{"Name": "LoadBalancer", "Value": "/".join(parts[:3])},
                               {"Name": "TargetGroup", "Value": "/".join(parts[3:])}]}
    _, cluster, service = resource_id.split("/", 2)
    return {"Namespace": "AWS/ECS", "MetricName": _CPU_MEMORY[metric_type], "Statistic": "Average",
            "Dimensions": [{"Name": "ClusterName", "Value": cluster}, {"Name": "ServiceName", "Value": service}]}


def put_target_tracking_alarms(plane: ControlPlane, region: str, policy: dict[str, Any]) -> None:
    """Create or redefine the policy's two alarms (inside the caller's transaction)."""
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    target = float(config["TargetValue"])
    metric = _metric(policy["ResourceId"], config["PredefinedMetricSpecification"])
    now = plane.clock()
    for ref in policy["Alarms"]:
        name = ref["AlarmName"]
        high = "-AlarmHigh-" in name
        periods = autoscale.SCALE_OUT_DATAPOINTS if high else autoscale.SCALE_IN_DATAPOINTS
        params = {
            "AlarmName": name,
            "AlarmDescription": f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy['PolicyARN']}.",
            "AlarmActions": [policy["PolicyARN"]],
            **metric,
            "Period": 60,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": target if high else target * (1 - autoscale.SCALE_IN_MARGIN),
            "ComparisonOperator": "GreaterThanThreshold" if high else "LessThanThreshold",
        }
        existing = plane.store.alarm(region, name)
        body = alarms.build_alarm(plane, region, params, now, existing)
        body["_ownedBy"] = policy["PolicyARN"]
        plane.store.put_alarm(region, body)


def delete_alarms_owned_by(plane: ControlPlane, region: str, policy_arns: set[str]) -> None:
    """Delete the alarms the given policies own (inside the caller's transaction)."""
    for body in plane.store.alarms(region):
        if alarms.managing_policy(body) in policy_arns:
            plane.store.delete_alarm(region, body["AlarmName"])
