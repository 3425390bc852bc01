"""The CloudWatch action table (``monitoring/2010-08-01``): action name -> control-plane operation.

Served in the three protocols botocore may speak to CloudWatch (api/server.py routes them all
here): Smithy RPC v2 CBOR (current botocore's default), JSON 1.0 with
``X-Amz-Target: GraniteServiceVersion20100801.<Action>``, and the query protocol
(``Action=<Action>&Version=2010-08-01``, older SDKs and the AWS CLI v1/v2 of distributions),
the last one recognised by its SigV4 credential scope naming ``monitoring``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control.cloudwatch import (
    alarms,
    get_metric_data,
    get_metric_statistics,
    list_metrics,
    put_metric_data,
    tags,
)
from portside.control.plane import ControlPlane

TARGET_PREFIX = "GraniteServiceVersion20100801."
SERVICE = "cloudwatch"
SIGNING_SERVICE = "monitoring"
API_VERSION = "2010-08-01"
XML_NAMESPACE = "http://monitoring.amazonaws.com/doc/2010-08-01/"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "PutMetricData": put_metric_data.put_metric_data,
    "GetMetricStatistics": get_metric_statistics.get_metric_statistics,
    "GetMetricData": get_metric_data.get_metric_data,
    "ListMetrics": list_metrics.list_metrics,
    "PutMetricAlarm": alarms.put_metric_alarm,
    "DescribeAlarms": alarms.describe_alarms,
    "DescribeAlarmsForMetric": alarms.describe_alarms_for_metric,
    "DeleteAlarms": alarms.delete_alarms,
    "SetAlarmState": alarms.set_alarm_state,
    "DescribeAlarmHistory": alarms.describe_alarm_history,
    "EnableAlarmActions": alarms.enable_alarm_actions,
    "DisableAlarmActions": alarms.disable_alarm_actions,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListTagsForResource": tags.list_tags_for_resource,
}
