"""Inputs every CloudWatch metric operation shares: times, dimensions, periods, pagination tokens."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from portside.control.cloudwatch.errors import CloudWatchError, invalid_value
from portside.core import metric_stats

#: Where a user's field names are spelled in errors: the query protocol's notation.
MEMBER = "member"


def epoch(value: Any) -> float:
    """A validated timestamp (datetime from CBOR/query, epoch number from JSON, ISO 8601 text) in seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).timestamp()


def as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def dimensions(items: list[dict[str, Any]] | None, field: str) -> dict[str, str]:
    """``[{Name, Value}]`` as a dict; a name given twice is refused."""
    result: dict[str, str] = {}
    for i, item in enumerate(items or (), 1):
        name = item["Name"]
        if name in result:
            raise invalid_value(name, f"{field}.{MEMBER}.{i}.Name", "a dimension name may appear only once")
        result[name] = item["Value"]
    return result


def dimension_list(dims: dict[str, str]) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in sorted(dims.items())]


def period(value: int, field: str) -> int:
    problem = metric_stats.period_problem(value)
    if problem is not None:
        raise invalid_value(value, field, problem)
    return value


def time_range(params: dict[str, Any]) -> tuple[float, float]:
    start, end = epoch(params["StartTime"]), epoch(params["EndTime"])
    if start >= end:
        raise CloudWatchError("InvalidParameterValue", "The parameter StartTime must be less than the parameter EndTime.")
    return start, end


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    """The offset a NextToken this API gave out stands for; InvalidNextToken for anything else."""
    if token is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise CloudWatchError("InvalidNextToken", f"The NextToken {token!r} is not one this API gave out.")
    return offset
