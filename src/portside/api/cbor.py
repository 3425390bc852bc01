"""CBOR (RFC 8949), the subset AWS's ``smithy-rpc-v2-cbor`` protocol uses.

What botocore sends and reads: unsigned and negative integers, byte and text strings (definite
or indefinite length), arrays, maps with text keys, tag 1 (an epoch timestamp, seconds, integer
or float), half/single/double floats, ``true``/``false``/``null``/``undefined``.

Decoding is hostile-input safe: every declared length is checked against the bytes still left
before anything is allocated (an array of 2**63 items in a 9-byte body is refused at once, as
is a string longer than the body), nesting is bounded by ``MAX_DEPTH``, trailing bytes and
any other tag or simple value are refused. Every refusal is a :class:`CborError` naming what
was wrong and where (byte offset).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from typing import Any

#: Far deeper than any AWS shape (CloudWatch's deepest input nests 7 levels).
MAX_DEPTH = 64

_BREAK = 0xFF
_INDEFINITE = 31


class CborError(ValueError):
    """The body is not CBOR portside accepts."""


def decode(data: bytes) -> Any:
    """The one data item ``data`` holds; timestamps (tag 1) as aware UTC datetimes."""
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.pos != len(reader.data):
        raise CborError(f"{len(reader.data) - reader.pos} unexpected bytes after the data item at offset {reader.pos}")
    return value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise CborError(f"truncated: {n} bytes needed at offset {self.pos}, {self.left()} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument; None for an indefinite length)."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            return major, info, int.from_bytes(self.take(size), "big")
        if info == _INDEFINITE and major in (2, 3, 4, 5, 7):
            return major, info, None
        raise CborError(f"reserved additional information {info} at offset {self.pos - 1}")

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CborError(f"data items nest more than {MAX_DEPTH} levels deep")
        start = self.pos
        major, info, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            assert arg is not None
            return -1 - arg
        if major in (2, 3):
            return self.string(major, arg, start)
        if major == 4:
            return self.array(arg, depth)
        if major == 5:
            return self.map(arg, depth, start)
        if major == 6:
            if arg != 1:
                raise CborError(f"tag {arg} at offset {start} is not supported (only tag 1, an epoch timestamp)")
            seconds = self.item(depth + 1)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
                raise CborError(f"tag 1 at offset {start} must hold a finite number of seconds")
            try:
                return datetime.fromtimestamp(seconds, tz=UTC)
            except (OverflowError, OSError, ValueError):
                raise CborError(f"timestamp {seconds} at offset {start} is out of range") from None
        return self.simple(info, arg, start)

    def string(self, major: int, length: int | None, start: int) -> bytes | str:
        if length is None:
            chunks: list[bytes] = []
            while True:
                if self.take(1)[0] == _BREAK:
                    break
                self.pos -= 1
                chunk_start = self.pos
                chunk_major, _, chunk_length = self.head()
                if chunk_major != major or chunk_length is None:
                    raise CborError(f"chunk at offset {chunk_start} of an indefinite string is not a definite string of its type")
                chunks.append(self.take(chunk_length))
            raw = b"".join(chunks)
        else:
            raw = self.take(length)
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CborError(f"text string at offset {start} is not UTF-8") from None

    def array(self, count: int | None, depth: int) -> list[Any]:
        items: list[Any] = []
        if count is None:
            while not self.at_break():
                items.append(self.item(depth + 1))
            return items
        if count > self.left():  # every item takes at least one byte
            raise CborError(f"array of {count} items at offset {self.pos} is longer than the body")
        for _ in range(count):
            items.append(self.item(depth + 1))
        return items

    def map(self, count: int | None, depth: int, start: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if count is not None and count * 2 > self.left():
            raise CborError(f"map of {count} pairs at offset {start} is longer than the body")
        index = 0
        while (index < count) if count is not None else not self.at_break():
            key_at = self.pos
            key = self.item(depth + 1)
            if not isinstance(key, str):
                raise CborError(f"map key at offset {key_at} is not a text string")
            if key in result:
                raise CborError(f"map key {key!r} at offset {key_at} is repeated")
            result[key] = self.item(depth + 1)
            index += 1
        return result

    def at_break(self) -> bool:
        if self.left() == 0:
            raise CborError(f"truncated: an indefinite-length item has no break at offset {self.pos}")
        if self.data[self.pos] == _BREAK:
            self.pos += 1
            return True
        return False

    def simple(self, info: int, arg: int | None, start: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):  # null, undefined: both "absent"
            return None
        if info == 25:
            assert arg is not None
            return struct.unpack(">e", arg.to_bytes(2, "big"))[0]
        if info == 26:
            assert arg is not None
            return struct.unpack(">f", arg.to_bytes(4, "big"))[0]
        if info == 27:
            assert arg is not None
            return struct.unpack(">d", arg.to_bytes(8, "big"))[0]
        if arg is None:
            raise CborError(f"unexpected break at offset {start}")
        raise CborError(f"simple value {arg} at offset {start} is not supported")


def encode(value: Any) -> bytes:
    """CBOR of a JSON-like value; ``datetime`` as tag 1 (seconds, float), floats as doubles."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _head(major: int, n: int, out: bytearray) -> None:
    if n < 24:
        out.append(major << 5 | n)
    elif n < 1 << 8:
        out += bytes((major << 5 | 24, n))
    elif n < 1 << 16:
        out.append(major << 5 | 25)
        out += n.to_bytes(2, "big")
    elif n < 1 << 32:
        out.append(major << 5 | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += n.to_bytes(8, "big")


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"value nests more than {MAX_DEPTH} levels deep")
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if not -(1 << 64) <= value < 1 << 64:
            raise ValueError(f"integer {value} does not fit CBOR's 64-bit arguments")
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, (bytes, bytearray)):
        _head(2, len(value), out)
        out += value
    elif isinstance(value, datetime):
        out.append(0xC1)  # tag 1
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        out.append(0xFB)
        out += struct.pack(">d", stamp.timestamp())
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        _head(5, len(value), out)
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"map key {key!r} is not a string")
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise ValueError(f"cannot encode {type(value).__name__} as CBOR")
