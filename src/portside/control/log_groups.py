"""CloudWatch Logs: log groups and log streams (CreateLogGroup ... DescribeLogStreams).

Groups and streams belong to the region the request is signed for, as on AWS. Errors are
CloudWatch Logs': ``ResourceNotFoundException``, ``ResourceAlreadyExistsException``,
``InvalidParameterException``; what portside does not implement (KMS keys, tags, log group
classes other than STANDARD) is refused by name, never dropped.
"""

from __future__ import annotations

from typing import Any

from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.control.store.logs import LogGroup, LogStream
from portside.core.awslogs import GROUP_NAME, STREAM_NAME
from portside.errors import AlreadyExistsError, InvalidParameterException, NotFoundError

#: The retentionInDays values CloudWatch Logs accepts.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
NOT_IMPLEMENTED = {
    "kmsKeyId": "KMS encryption of log groups is not implemented",
    "tags": "tags on log groups are not implemented",
    "deletionProtectionEnabled": "deletion protection is not implemented",
}


def now_ms(plane: ControlPlane) -> int:
    return int(plane.clock() * 1000)


def group_arn(plane: ControlPlane, region: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{plane.account}:log-group:{name}"


def group_name(params: dict[str, Any]) -> str:
    """``logGroupName``, or the name in ``logGroupIdentifier`` (a name or an ARN)."""
    name = params.get("logGroupName")
    identifier = params.get("logGroupIdentifier")
    if name and identifier:
        raise InvalidParameterException("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if identifier:
        name = identifier.split(":log-group:", 1)[1].removesuffix(":*") if ":log-group:" in identifier else identifier
    if not name:
        raise InvalidParameterException("Either logGroupName or logGroupIdentifier is required.")
    return str(name)


def require_group(plane: ControlPlane, region: str, name: str) -> LogGroup:
    group = plane.store.get_log_group(region, name)
    if group is None:
        raise NotFoundError("The specified log group does not exist.", "ResourceNotFoundException")
    return group


def require_stream(plane: ControlPlane, region: str, group: str, name: str) -> LogStream:
    require_group(plane, region, group)
    stream = plane.store.get_log_stream(region, group, name)
    if stream is None:
        raise NotFoundError("The specified log stream does not exist.", "ResourceNotFoundException")
    return stream


def check_group_name(name: str) -> None:
    if not GROUP_NAME.match(name):
        raise InvalidParameterException(
            f"logGroupName {name!r}: must be 1 to 512 of a-z, A-Z, 0-9, '_', '-', '/', '.', '#'."
        )


def check_stream_name(name: str) -> None:
    if not STREAM_NAME.match(name):
        raise InvalidParameterException(f"logStreamName {name!r}: must be 1 to 512 characters, without ':' or '*'.")


def create_log_group(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = str(params["logGroupName"])
    check_group_name(name)
    for key, why in NOT_IMPLEMENTED.items():
        if params.get(key):
            raise InvalidParameterException(f"{key}: {why} by portside.")
    if params.get("logGroupClass", "STANDARD") != "STANDARD":
        raise InvalidParameterException("logGroupClass: only STANDARD is implemented by portside.")
    with plane.store.transaction():
        if not plane.store.add_log_group(region, name, now_ms(plane)):
            raise AlreadyExistsError("The specified log group already exists")
    return {}


def delete_log_group(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with plane.store.transaction():
        if not plane.store.delete_log_group(region, str(params["logGroupName"])):
            raise NotFoundError("The specified log group does not exist.", "ResourceNotFoundException")
    return {}


def describe_log_groups(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    prefix = params.get("logGroupNamePrefix") or ""
    pattern = params.get("logGroupNamePattern")
    if prefix and pattern:
        raise InvalidParameterException("logGroupNamePrefix and logGroupNamePattern are mutually exclusive.")
    groups = plane.store.log_groups(region, prefix)
    if pattern:
        groups = [g for g in groups if pattern.lower() in g.name.lower()]
    identifiers = params.get("logGroupIdentifiers")
    if identifiers:
        wanted = {group_name({"logGroupIdentifier": i}) for i in identifiers}
        groups = [g for g in groups if g.name in wanted]
    if params.get("logGroupClass", "STANDARD") != "STANDARD":
        groups = []  # every group here is STANDARD
    if params.get("accountIdentifiers") or params.get("includeLinkedAccounts"):
        raise InvalidParameterException("accountIdentifiers, includeLinkedAccounts: cross-account search is not implemented.")
    page, token = paginate(groups, {"maxResults": params.get("limit"), "nextToken": params.get("nextToken")}, limit=50)
    out: dict[str, Any] = {"logGroups": [_group_json(plane, region, g) for g in page]}
    if token:
        out["nextToken"] = token
    return out


def _group_json(plane: ControlPlane, region: str, group: LogGroup) -> dict[str, Any]:
    arn = group_arn(plane, region, group.name)
    out: dict[str, Any] = {
        "logGroupName": group.name, "creationTime": group.created_at, "metricFilterCount": 0,
        "arn": arn + ":*", "logGroupArn": arn, "storedBytes": group.stored_bytes, "logGroupClass": "STANDARD",
    }
    if group.retention_days is not None:
        out["retentionInDays"] = group.retention_days
    return out


def put_retention_policy(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    days = params["retentionInDays"]
    if days not in RETENTION_DAYS:
        raise InvalidParameterException(
            f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(str(d) for d in RETENTION_DAYS)}]"
        )
    name = str(params["logGroupName"])
    with plane.store.transaction():
        require_group(plane, region, name)
        plane.store.set_log_retention(region, name, int(days))
    return {}


def delete_retention_policy(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = str(params["logGroupName"])
    with plane.store.transaction():
        require_group(plane, region, name)
        plane.store.set_log_retention(region, name, None)
    return {}


def create_log_stream(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group, name = str(params["logGroupName"]), str(params["logStreamName"])
    check_stream_name(name)
    with plane.store.transaction():
        require_group(plane, region, group)
        if not plane.store.add_log_stream(region, group, name, now_ms(plane)):
            raise AlreadyExistsError("The specified log stream already exists")
    return {}


def delete_log_stream(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group, name = str(params["logGroupName"]), str(params["logStreamName"])
    with plane.store.transaction():
        require_stream(plane, region, group, name)
        plane.store.delete_log_stream(region, group, name)
    return {}


def describe_log_streams(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group = group_name(params)
    prefix = params.get("logStreamNamePrefix") or ""
    order = params.get("orderBy", "LogStreamName")
    if prefix and order == "LastEventTime":
        raise InvalidParameterException("Cannot order by LastEventTime with a logStreamNamePrefix.")
    require_group(plane, region, group)
    streams = plane.store.log_streams(region, group, prefix)
    if order == "LastEventTime":
        streams.sort(key=lambda s: (s.last_event or 0, s.name))
    if params.get("descending"):
        streams.reverse()
    page, token = paginate(streams, {"maxResults": params.get("limit"), "nextToken": params.get("nextToken")}, limit=50)
    arn = group_arn(plane, region, group)
    out: dict[str, Any] = {"logStreams": [_stream_json(arn, s) for s in page]}
    if token:
        out["nextToken"] = token
    return out


def _stream_json(group_arn_: str, stream: LogStream) -> dict[str, Any]:
    out: dict[str, Any] = {
        "logStreamName": stream.name, "creationTime": stream.created_at,
        "arn": f"{group_arn_}:log-stream:{stream.name}", "storedBytes": stream.stored_bytes,
    }
    for key, value in (("firstEventTimestamp", stream.first_event), ("lastEventTimestamp", stream.last_event),
                       ("lastIngestionTime", stream.last_ingestion)):
        if value is not None:
            out[key] = value
    return out
