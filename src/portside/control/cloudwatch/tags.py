"""TagResource, UntagResource and ListTagsForResource for CloudWatch alarms.

Tags live with the alarm (its ``Tags`` member, never rendered by DescribeAlarms, as on AWS) and go
with it when it is deleted. A tag key is set once (a later value replaces an earlier one); an alarm
holds at most ``MAX_TAGS``. ``aws:`` keys are AWS's own and refused. An ARN that names no alarm of
this region answers ResourceNotFoundException; one that is not an alarm ARN, InvalidParameterValue.
"""

from __future__ import annotations

import re
from typing import Any

from portside.control.cloudwatch.errors import CloudWatchError, invalid
from portside.control.plane import ControlPlane

#: Tags one resource may carry, as on AWS.
MAX_TAGS = 50
_ALARM_ARN = re.compile(r"^arn:aws:cloudwatch:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):alarm:(?P<name>.+)$")


def _alarm(plane: ControlPlane, region: str, arn: str) -> dict[str, Any]:
    match = _ALARM_ARN.match(arn)
    if match is None:
        raise invalid(f"The value {arn} for parameter ResourceARN is not valid: portside tags only alarms "
                      "(arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME).")
    body = plane.store.alarm(region, match["name"])
    if body is None or match["region"] != region or match["account"] != plane.account:
        raise CloudWatchError("ResourceNotFoundException", f"Alarm {arn} not found.")
    return body


def merged_tags(current: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """``current`` with ``new`` set over it (key order kept); refused past MAX_TAGS or for aws: keys."""
    tags = {t["Key"]: t["Value"] for t in current}
    for tag in new:
        if tag["Key"].lower().startswith("aws:"):
            raise invalid(f"The value {tag['Key']} for parameter Tags.Key is not valid: the aws: prefix is reserved.")
        tags[tag["Key"]] = tag["Value"]
    if len(tags) > MAX_TAGS:
        raise invalid(f"A resource can have at most {MAX_TAGS} tags; this request would leave {len(tags)}.")
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        body = _alarm(plane, region, params["ResourceARN"])
        body["Tags"] = merged_tags(body.get("Tags", []), params["Tags"])
        plane.store.put_alarm(region, body)
    return {}


def untag_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        body = _alarm(plane, region, params["ResourceARN"])
        gone = set(params["TagKeys"])
        body["Tags"] = [t for t in body.get("Tags", []) if t["Key"] not in gone]
        plane.store.put_alarm(region, body)
    return {}


def list_tags_for_resource(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": list(_alarm(plane, region, params["ResourceARN"]).get("Tags", []))}
