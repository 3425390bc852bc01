"""One health check probe on the wire: the request it sends and what the answer's bytes mean.

Theory of operation
-------------------
A probe is ``GET <path> HTTP/1.1`` on a fresh connection (ALB closes after every check), with
``Host: <ip>:<port>``, ``User-Agent: ELB-HealthChecker/2.0`` and ``Connection: close``.
The caller (``proxy/health.py``) owns the socket and the timeout; it feeds everything received
so far to ``judge`` after every read, and stops as soon as ``judge`` returns an outcome.

``judge`` reads only the response head, never the body, and never more than
``MAX_RESPONSE_HEAD_BYTES`` (8 KiB, the blank line that ends it included): a status line or
head longer than that, a status
line that is not ``HTTP/1.x NNN``, a malformed header field, or a connection that ends
before the blank line closing the head is a failed probe (``Target.FailedHealthChecks``),
decided as soon as the bytes show it. A hostile or broken target therefore costs the
checker at most 8 KiB and one timeout per probe, whatever it sends. A complete head with a
well-formed status line passes or fails by the matcher (``Target.ResponseCodeMismatch``).
"""

from __future__ import annotations

import re

from portside.core.lb.health import ProbeOutcome, outcome_for_status

__all__ = ["MAX_RESPONSE_HEAD_BYTES", "USER_AGENT", "judge", "probe_request"]

MAX_RESPONSE_HEAD_BYTES = 8192
USER_AGENT = b"ELB-HealthChecker/2.0"

_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([1-5][0-9][0-9])(?: [\t -~\x80-\xff]*)?")
_FIELD_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t -~\x80-\xff]*")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_VERSION_PREFIX = b"HTTP/1."


def probe_request(path: str, host_header: str) -> bytes:
    """The probe's request bytes.

    Raises: UnicodeEncodeError when ``path`` or ``host_header`` is not ASCII (the API refuses
    such paths; the checker counts the probe as failed).
    """
    return (
        b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        % (path.encode("ascii"), host_header.encode("ascii"), USER_AGENT)
    )


def judge(received: bytes, closed: bool, matcher: str) -> ProbeOutcome | None:
    """What the bytes a target sent so far mean.

    :param received: every byte received on the probe's connection so far.
    :param closed: True when the target closed the connection (no more bytes will come).
    :param matcher: the target group's ``Matcher.HttpCode``.
    Returns: the probe's outcome, or None when more bytes are needed to decide.
    """
    window = received[:MAX_RESPONSE_HEAD_BYTES]  # the head, its closing blank line included, must fit
    start = window[: len(_VERSION_PREFIX)]
    if start != _VERSION_PREFIX[: len(start)]:
        return ProbeOutcome.failed(f"not an HTTP/1.x response: {_shown(window)}")  # garbage fails at once
    line_end = window.find(b"\n")
    match = None
    if line_end >= 0:
        status_line = window[:line_end].removesuffix(b"\r")
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            return ProbeOutcome.failed(f"malformed status line {_shown(status_line)}")
    end = _HEAD_END.search(window)
    if end is None:
        if line_end < 0 and len(received) >= MAX_RESPONSE_HEAD_BYTES:
            return ProbeOutcome.failed(f"status line longer than {MAX_RESPONSE_HEAD_BYTES} bytes")
        if len(received) >= MAX_RESPONSE_HEAD_BYTES:
            return ProbeOutcome.failed(f"response head longer than {MAX_RESPONSE_HEAD_BYTES} bytes")
        if closed:
            if not received:
                return ProbeOutcome.failed("connection closed without a response")
            return ProbeOutcome.failed("connection closed before the end of the response head")
        if line_end >= 0:
            bad = _bad_field(window[line_end + 1 :], complete=False)
            if bad is not None:
                return ProbeOutcome.failed(f"malformed header field {_shown(bad)}")
        return None
    assert match is not None  # a head end implies a complete first line
    bad = _bad_field(window[line_end + 1 : end.start() + 1], complete=True)
    if bad is not None:
        return ProbeOutcome.failed(f"malformed header field {_shown(bad)}")
    return outcome_for_status(int(match.group(1)), matcher)


def _bad_field(fields: bytes, complete: bool) -> bytes | None:
    """The first malformed header field line in ``fields`` (the last, unfinished line is skipped
    unless ``complete``); None when every line checked is well-formed."""
    lines = fields.split(b"\n")
    if not complete:
        lines = lines[:-1]
    for line in lines:
        line = line.removesuffix(b"\r")
        if line and _FIELD_LINE.fullmatch(line) is None:
            return line
    return None


def _shown(data: bytes, limit: int = 40) -> str:
    """A short, printable form of ``data`` for a log line."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")
