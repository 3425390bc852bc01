"""CloudWatch Logs: events in and out (PutLogEvents, GetLogEvents, FilterLogEvents).

Paging as CloudWatch pages: GetLogEvents answers ``nextForwardToken`` / ``nextBackwardToken``
(``f/`` and ``b/`` followed by a position: the (timestamp, arrival) of the event the page ends
or begins at) and, at the end of the stream, the same forward token it was given, which is how
SDKs know to stop. Without a token it answers the newest events (``startFromHead`` false, the
default) or the oldest. FilterLogEvents walks the group's events in (timestamp, arrival) order
across streams; ``nextToken`` carries the position it stopped at.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from portside.control.log_groups import group_name, now_ms, require_group, require_stream
from portside.control.plane import ControlPlane
from portside.control.store.logs import NewEvent, StoredEvent
from portside.core import log_filter
from portside.core.log_events import MAX_MESSAGE_BYTES, REPLACEMENT, batch_problem
from portside.errors import InvalidParameterException

#: GetLogEvents and FilterLogEvents answer at most this many bytes of messages (as CloudWatch: 1 MB).
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_EVENTS = 10_000
#: FilterLogEvents reads at most this many events per call before it answers with a nextToken.
FILTER_SCAN_EVENTS = 100_000
FILTER_CHUNK = 1000
#: PutLogEvents: CloudWatch's bounds on an event's age and how far ahead it may be.
TOO_OLD_MS = 14 * 24 * 3600 * 1000
TOO_NEW_MS = 2 * 3600 * 1000
MAX_SPAN_MS = 24 * 3600 * 1000
_TOKEN = re.compile(r"^([fb])/(-?\d{1,20})/(\d{1,20})$")
HEAD = (-1, 0)


def put_log_events(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group = group_name(params)
    stream = str(params["logStreamName"])
    events = list(params["logEvents"])
    if params.get("entity"):
        raise InvalidParameterException("entity: entity metadata of log events is not implemented by portside.")
    problem = batch_problem([str(e["message"]) for e in events])
    if problem:
        raise InvalidParameterException(f"logEvents: {problem}.")
    for i, event in enumerate(events):
        if len(str(event["message"]).encode()) > MAX_MESSAGE_BYTES:
            raise InvalidParameterException(
                f"logEvents[{i}].message: at most {MAX_MESSAGE_BYTES} bytes (256 KiB less 26 per event)."
            )
        if i and event["timestamp"] < events[i - 1]["timestamp"]:
            raise InvalidParameterException("Log events in a single PutLogEvents request must be in chronological order.")
    if events and events[-1]["timestamp"] - events[0]["timestamp"] > MAX_SPAN_MS:
        raise InvalidParameterException("logEvents: a batch of log events in a single request cannot span more than 24 hours.")
    now = now_ms(plane)
    with plane.store.transaction():
        group_row = require_group(plane, region, group)
        require_stream(plane, region, group, stream)
        oldest = now - TOO_OLD_MS
        if group_row.retention_days is not None:
            oldest = max(oldest, now - group_row.retention_days * 86_400_000)
        rejected: dict[str, int] = {}
        accepted = []
        batch = uuid.uuid4().hex
        for i, event in enumerate(events):
            ts = int(event["timestamp"])
            if ts > now + TOO_NEW_MS:
                rejected.setdefault("tooNewLogEventStartIndex", i)
            elif ts < oldest:
                key = "tooOldLogEventEndIndex" if ts < now - TOO_OLD_MS else "expiredLogEventEndIndex"
                rejected[key] = i
            else:
                message = str(event["message"]).replace("\x00", REPLACEMENT)
                accepted.append(NewEvent(f"put:{batch}:{i}", ts, message))
        plane.store.add_log_events(region, group, stream, accepted, now)
    out: dict[str, Any] = {"nextSequenceToken": f"{now:056d}"}  # ignored when sent back, as AWS does now
    if rejected:
        out["rejectedLogEventsInfo"] = rejected
    return out


def get_log_events(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group = group_name(params)
    stream = str(params["logStreamName"])
    if params.get("unmask"):
        raise InvalidParameterException("unmask: data protection is not implemented by portside.")
    limit = int(params.get("limit") or MAX_EVENTS)
    token = params.get("nextToken")
    start, end = params.get("startTime"), params.get("endTime")
    require_stream(plane, region, group, stream)
    kwargs: dict[str, Any] = {"start": start, "end": end, "limit": limit}
    if token:
        direction, position = _parse_token(token)
    else:
        direction, position = ("f", HEAD) if params.get("startFromHead") else ("b", None)
    if direction == "f":
        events = plane.store.log_events(region, group, [stream], after=position, **kwargs)
    else:
        events = plane.store.log_events(region, group, [stream], before=position, newest_first=True, **kwargs)
        events.reverse()
    events = _within_bytes(events, from_end=direction == "b")
    if events:
        forward = _token("f", events[-1])
        backward = _token("b", events[0])
    else:
        here = position if position is not None else HEAD
        forward = token if token and direction == "f" else f"f/{here[0]}/{here[1]}"
        backward = token if token and direction == "b" else f"b/{here[0]}/{here[1]}"
    return {
        "events": [{"timestamp": e.ts, "message": e.message, "ingestionTime": e.ingested} for e in events],
        "nextForwardToken": forward,
        "nextBackwardToken": backward,
    }


def filter_log_events(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    group = group_name(params)
    names = params.get("logStreamNames")
    prefix = params.get("logStreamNamePrefix")
    if names and prefix:
        raise InvalidParameterException("logStreamNames and logStreamNamePrefix are mutually exclusive.")
    try:
        pattern = log_filter.parse(params.get("filterPattern") or "")
    except log_filter.UnsupportedPattern as exc:
        raise InvalidParameterException(f"filterPattern: {exc}.") from exc
    if params.get("unmask"):
        raise InvalidParameterException("unmask: data protection is not implemented by portside.")
    limit = int(params.get("limit") or MAX_EVENTS)
    require_group(plane, region, group)
    streams: list[str] | None = list(names) if names else None
    if prefix:
        streams = [s.name for s in plane.store.log_streams(region, group, prefix)]
    start, end = params.get("startTime"), params.get("endTime")
    position = _parse_token(params["nextToken"])[1] if params.get("nextToken") else HEAD
    found: list[StoredEvent] = []
    size = 0
    scanned = 0
    more = False
    while not more:
        chunk = plane.store.log_events(
            region, group, streams, start=start, end=None if end is None else end + 1, after=position, limit=FILTER_CHUNK
        )
        for event in chunk:
            scanned += 1
            position = (event.ts, event.position)
            if pattern.matches(event.message):
                size += len(event.message.encode())
                found.append(event)
                if len(found) >= limit or size >= MAX_RESPONSE_BYTES:
                    more = True  # a full page: the next one may hold more
                    break
        if len(chunk) < FILTER_CHUNK:
            break  # the end of the group's events
        more = more or scanned >= FILTER_SCAN_EVENTS
    searched = streams if streams is not None else [s.name for s in plane.store.log_streams(region, group)]
    out: dict[str, Any] = {
        "events": [
            {"logStreamName": e.stream, "timestamp": e.ts, "message": e.message, "ingestionTime": e.ingested,
             "eventId": f"{e.ts:020d}{e.position:036d}"}
            for e in found
        ],
        "searchedLogStreams": [{"logStreamName": s, "searchedCompletely": not more} for s in searched],
    }
    if more:
        out["nextToken"] = f"f/{position[0]}/{position[1]}"
    return out


def _within_bytes(events: list[StoredEvent], from_end: bool) -> list[StoredEvent]:
    """The events that fit in one response (from the end of the list when paging backwards)."""
    ordered = reversed(events) if from_end else iter(events)
    kept: list[StoredEvent] = []
    size = 0
    for event in ordered:
        size += len(event.message.encode()) + 26
        if kept and size > MAX_RESPONSE_BYTES:
            break
        kept.append(event)
    return list(reversed(kept)) if from_end else kept


def _token(direction: str, event: StoredEvent) -> str:
    return f"{direction}/{event.ts}/{event.position}"


def _parse_token(token: str) -> tuple[str, tuple[int, int]]:
    match = _TOKEN.match(str(token))
    if not match:
        raise InvalidParameterException("The specified nextToken is invalid.")
    return match.group(1), (int(match.group(2)), int(match.group(3)))
