"""The Application Auto Scaling action table: ``X-Amz-Target: AnyScaleFrontendService.<Action>``
-> control-plane operation (JSON 1.1, ``application-autoscaling/2016-02-06``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import autoscaling, scaling_policies, scheduled_actions
from portside.control.plane import ControlPlane

TARGET_PREFIX = "AnyScaleFrontendService."
SERVICE = "application-autoscaling"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "RegisterScalableTarget": autoscaling.register_scalable_target,
    "DescribeScalableTargets": autoscaling.describe_scalable_targets,
    "DeregisterScalableTarget": autoscaling.deregister_scalable_target,
    "PutScalingPolicy": scaling_policies.put_scaling_policy,
    "DescribeScalingPolicies": scaling_policies.describe_scaling_policies,
    "DeleteScalingPolicy": scaling_policies.delete_scaling_policy,
    "DescribeScalingActivities": autoscaling.describe_scaling_activities,
    "PutScheduledAction": scheduled_actions.put_scheduled_action,
    "DescribeScheduledActions": scheduled_actions.describe_scheduled_actions,
    "DeleteScheduledAction": scheduled_actions.delete_scheduled_action,
}
