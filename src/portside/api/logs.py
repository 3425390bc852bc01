"""The CloudWatch Logs action table (JSON 1.1, ``X-Amz-Target: Logs_20140328.<Action>``, signing service ``logs``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import log_events, log_groups
from portside.control.plane import ControlPlane

TARGET_PREFIX = "Logs_20140328."
SERVICE = "logs"

OPERATIONS: dict[str, Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]] = {
    "CreateLogGroup": log_groups.create_log_group,
    "DescribeLogGroups": log_groups.describe_log_groups,
    "DeleteLogGroup": log_groups.delete_log_group,
    "PutRetentionPolicy": log_groups.put_retention_policy,
    "DeleteRetentionPolicy": log_groups.delete_retention_policy,
    "CreateLogStream": log_groups.create_log_stream,
    "DescribeLogStreams": log_groups.describe_log_streams,
    "DeleteLogStream": log_groups.delete_log_stream,
    "PutLogEvents": log_events.put_log_events,
    "GetLogEvents": log_events.get_log_events,
    "FilterLogEvents": log_events.filter_log_events,
}
