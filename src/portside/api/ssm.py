"""The SSM Parameter Store action table: ``X-Amz-Target: AmazonSSM.<Action>`` -> control-plane
operation (JSON 1.1, ``ssm/2014-11-06``, signed for ``ssm``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import ssm, ssm_tags
from portside.control.plane import ControlPlane

TARGET_PREFIX = "AmazonSSM."
SERVICE = "ssm"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "PutParameter": ssm.put_parameter,
    "GetParameter": ssm.get_parameter,
    "GetParameters": ssm.get_parameters,
    "GetParametersByPath": ssm.get_parameters_by_path,
    "DescribeParameters": ssm.describe_parameters,
    "DeleteParameter": ssm.delete_parameter,
    "DeleteParameters": ssm.delete_parameters,
    "GetParameterHistory": ssm.get_parameter_history,
    "AddTagsToResource": ssm_tags.add_tags_to_resource,
    "RemoveTagsFromResource": ssm_tags.remove_tags_from_resource,
    "ListTagsForResource": ssm_tags.list_tags_for_resource,
}
