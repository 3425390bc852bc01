"""Container output as CloudWatch Logs events: splitting, cleaning, keys and batches.

Theory of operation: the agent reads a container's output line by line from Docker, each line
with Docker's nanosecond timestamp. A line becomes one event, or several when it is longer than
CloudWatch's event limit (``MAX_MESSAGE_BYTES``: 256 KiB less the 26 bytes CloudWatch counts per
event), split on character boundaries as Docker's awslogs driver splits. Bytes that are not UTF-8
become U+FFFD and NUL becomes U+FFFD too (events are stored as text; PostgreSQL's text holds no
NUL); other control characters are kept as the container wrote them.

Every event gets a key that is the same however often the line is read again: the line's
timestamp in nanoseconds and the event's index among the events of that timestamp. A
``Cursor`` (the last timestamp shipped, and how many of its events) says where to resume: the
agent re-reads from the cursor's second and skips what it shipped already; the control plane
keeps one event per key, so a batch shipped twice is stored once.

Batches are bounded as PutLogEvents bounds them: at most ``MAX_BATCH_EVENTS`` events and
``MAX_BATCH_BYTES`` (message bytes plus 26 per event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 10_000
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Cursor:
    """Shipped up to here: every event with a timestamp below ``ts_ns``, and ``count`` events at it."""

    ts_ns: int = 0
    count: int = 0


@dataclass(frozen=True)
class Event:
    key: str
    ts_ns: int
    message: str

    @property
    def ts_ms(self) -> int:
        return self.ts_ns // 1_000_000

    @property
    def size(self) -> int:
        return len(self.message.encode()) + EVENT_OVERHEAD_BYTES


def clean(raw: bytes) -> str:
    """Container bytes as storable text: not UTF-8 and NUL become U+FFFD; a final newline goes."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace").replace("\x00", REPLACEMENT)


def split_message(text: str, limit: int = MAX_MESSAGE_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut between characters."""
    data = text.encode()
    if len(data) <= limit:
        return [text]
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # do not cut inside a character
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


class EventReader:
    """Turns (timestamp ns, line) pairs into keyed events after a cursor, in order."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self._ts = -1
        self._index = 0

    def events(self, ts_ns: int, raw: bytes) -> list[Event]:
        """The events of one line, without those at or before the cursor."""
        if ts_ns != self._ts:
            self._ts, self._index = ts_ns, 0
        out = []
        for piece in split_message(clean(raw)):
            index = self._index
            self._index += 1
            if ts_ns < self.cursor.ts_ns or (ts_ns == self.cursor.ts_ns and index < self.cursor.count):
                continue
            out.append(Event(f"{ts_ns}:{index}", ts_ns, piece))
        return out


def advance(cursor: Cursor, shipped: Iterable[Event]) -> Cursor:
    """The cursor after ``shipped`` were accepted: it only moves forward (events read again are behind it)."""
    ts, count = cursor.ts_ns, cursor.count
    for event in shipped:
        index = int(event.key.rsplit(":", 1)[1])
        if event.ts_ns < ts:
            continue
        if event.ts_ns > ts:
            ts, count = event.ts_ns, 0
        count = max(count, index + 1)
    return Cursor(ts, count)


def batches(events: Iterable[Event]) -> Iterator[list[Event]]:
    """The events in order, in batches PutLogEvents would take (count and bytes bounded)."""
    batch: list[Event] = []
    size = 0
    for event in events:
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + event.size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event.size
    if batch:
        yield batch


def batch_problem(messages: list[str]) -> str | None:
    """Why a batch of messages exceeds PutLogEvents' bounds (None when it does not)."""
    if len(messages) > MAX_BATCH_EVENTS:
        return f"at most {MAX_BATCH_EVENTS} events per batch (got {len(messages)})"
    total = sum(len(m.encode()) + EVENT_OVERHEAD_BYTES for m in messages)
    if total > MAX_BATCH_BYTES:
        return f"at most {MAX_BATCH_BYTES} bytes per batch, counting 26 per event (got {total})"
    return None
