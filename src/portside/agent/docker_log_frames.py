"""Docker's ``logs --follow --timestamps`` output back into (timestamp ns, line) pairs.

Without a TTY, Docker sends one frame per message, each beginning with its RFC 3339 timestamp
(nanoseconds). A line longer than Docker's 16 KiB messages arrives as several frames of exactly
16 KiB with the same timestamp, the last one shorter, and none of them ends with a newline (Docker
writes one only after a whole message): ``frame_lines`` joins them again. A container with a TTY
sends one raw stream, cut anywhere: ``raw_lines`` splits it on newlines. Neither ever holds more
than ``MAX_LINE_BYTES`` of one line: an endless line is handed on in parts.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator

#: Docker cuts longer lines into messages of this many bytes (daemon/logger's copier).
DOCKER_MESSAGE_BYTES = 16 * 1024
#: A line is handed on in parts of this size at most (the agent then splits parts into events).
MAX_LINE_BYTES = 1024 * 1024
_STAMP = re.compile(rb"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z ")


def frame_lines(frames: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Lines from Docker's frames (one message each, timestamp first), partial messages joined."""
    pending = b""
    pending_ts: int | None = None
    for frame in frames:
        match = _STAMP.match(frame)
        if match is None:
            continue  # not a message of ours (no timestamp): skip rather than guess
        stamp = _nanoseconds(match)
        payload = frame[match.end():]
        if pending_ts is not None and stamp != pending_ts:  # a new message: the pending one is whole
            yield pending_ts, pending
            pending, pending_ts = b"", None
        if payload.endswith(b"\n"):
            yield stamp, pending + payload[:-1]
            pending, pending_ts = b"", None
        elif len(payload) < DOCKER_MESSAGE_BYTES:  # the last piece of a long line (or text without a newline)
            yield stamp, pending + payload
            pending, pending_ts = b"", None
        else:
            pending, pending_ts = pending + payload, stamp
            if len(pending) >= MAX_LINE_BYTES:  # a hostile endless line: hand it on in parts, never hold it all
                yield stamp, pending
                pending = b""
    if pending_ts is not None:
        yield pending_ts, pending


def raw_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Lines of a TTY's raw stream: each line Docker wrote starts with its timestamp."""
    buffer = b""
    stamp: int | None = None  # the timestamp of the line in ``buffer``, once read
    for chunk in chunks:
        buffer += chunk
        while True:
            if stamp is None:
                match = _STAMP.match(buffer)
                if match is None:
                    junk, newline, rest = buffer.partition(b"\n")
                    if newline:  # a line without a timestamp is not Docker's: skip it
                        buffer = rest
                        continue
                    if len(buffer) >= MAX_LINE_BYTES:
                        buffer = b""
                    break  # the timestamp may still be arriving
                stamp, buffer = _nanoseconds(match), buffer[match.end():]
            line, newline, rest = buffer.partition(b"\n")
            if newline:
                yield stamp, line.rstrip(b"\r")
                buffer, stamp = rest, None
                continue
            while len(buffer) >= MAX_LINE_BYTES:  # no newline for a long while: hand parts on
                yield stamp, buffer[:MAX_LINE_BYTES]
                buffer = buffer[MAX_LINE_BYTES:]
            break
    if stamp is not None and buffer:
        yield stamp, buffer


def _nanoseconds(match: re.Match[bytes]) -> int:
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or b"0").ljust(9, b"0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1_000_000_000 + int(fraction)
