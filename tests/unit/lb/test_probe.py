"""portside.core.lb.probe: the health check request and what a target's answer means.

``judge`` is fed everything received so far, as the checker does after every read; it must
decide as soon as the bytes allow, never need more than 8 KiB of head, and never raise.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.probe import MAX_RESPONSE_HEAD_BYTES, judge, probe_request

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"


def test_the_request_is_alb_shaped() -> None:
    assert probe_request("/health?x=1", "10.0.0.5:32768") == (
        b"GET /health?x=1 HTTP/1.1\r\nHost: 10.0.0.5:32768\r\nUser-Agent: ELB-HealthChecker/2.0\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )


def test_a_non_ascii_path_cannot_be_sent() -> None:
    with pytest.raises(UnicodeEncodeError):
        probe_request("/caf\u00e9", "10.0.0.5:80")


@pytest.mark.parametrize(
    ("head", "kind", "code"),
    [
        (OK_HEAD, "ok", 200),
        (OK_HEAD + b"ok", "ok", 200),  # the body is never read
        (b"HTTP/1.0 200\n\n", "ok", 200),  # no reason phrase, bare LF line ends
        (b"HTTP/1.1 204 \r\n\r\n", "ok", None),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n", "code_mismatch", 503),
        (b"HTTP/1.1 302 Found\r\nLocation: /login\r\n\r\n", "code_mismatch", 302),
    ],
)
def test_a_complete_head_is_judged_by_the_matcher(head: bytes, kind: str, code: int | None) -> None:
    outcome = judge(head, closed=False, matcher="200-299")
    assert outcome is not None and outcome.kind == kind
    if code is not None:
        assert outcome.code == code


@pytest.mark.parametrize(
    ("received", "closed", "detail"),
    [
        (b"", True, "connection closed without a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", True, "connection closed before the end of the response head"),
        (b"HTTP/1.1 200 OK\r\n", True, "connection closed before the end of the response head"),
        (b"\x00\xff garbage", False, "not an HTTP/1.x response"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", False, "not an HTTP/1.x response"),
        (b"H", True, "connection closed before the end"),
        (b"HTTP/2 200\r\n\r\n", False, "not an HTTP/1.x response"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", False, "malformed status line"),
        (b"HTTP/1.1 OK 200\r\n", False, "malformed status line"),
        (b"HTTP/1.1 200 O\x00K\r\n", False, "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n", False, "malformed header field"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", False, "malformed header field"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", False, "malformed header field"),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", False, "malformed header field"),
        (b"HTTP/1.1 200 " + b"A" * 65536 + b"\r\n\r\n", False, f"status line longer than {MAX_RESPONSE_HEAD_BYTES} bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 2000, False, f"response head longer than {MAX_RESPONSE_HEAD_BYTES} bytes"),
    ],
)
def test_failures(received: bytes, closed: bool, detail: str) -> None:
    outcome = judge(received, closed, "200")
    assert outcome is not None and outcome.kind == "failed", outcome
    assert outcome.detail.startswith(detail), outcome.detail


@pytest.mark.parametrize("partial", [b"", b"HTT", b"HTTP/1.1 200 O", b"HTTP/1.1 200 OK\r\nX-A: b\r\nX-", OK_HEAD[:-2]])
def test_an_unfinished_good_head_waits_for_more(partial: bytes) -> None:
    assert judge(partial, closed=False, matcher="200") is None


def test_a_head_of_exactly_the_limit_passes_and_one_byte_more_fails() -> None:
    start = b"HTTP/1.1 200 OK\r\nX-Pad: "
    end = b"\r\n\r\n"
    exact = start + b"p" * (MAX_RESPONSE_HEAD_BYTES - len(start) - len(end)) + end
    assert len(exact) == MAX_RESPONSE_HEAD_BYTES  # the head, blank line included, fills the limit
    outcome = judge(exact, closed=False, matcher="200")
    assert outcome is not None and outcome.passed
    longer = start + b"p" * (MAX_RESPONSE_HEAD_BYTES - len(start) - len(end) + 1) + end
    outcome = judge(longer, closed=False, matcher="200")
    assert outcome is not None and outcome.kind == "failed"
    assert outcome.detail == f"response head longer than {MAX_RESPONSE_HEAD_BYTES} bytes"


@given(st.binary(max_size=3 * MAX_RESPONSE_HEAD_BYTES), st.booleans())
def test_any_bytes_give_an_outcome_or_a_request_for_more_never_an_exception(data: bytes, closed: bool) -> None:
    outcome = judge(data, closed, "200-399")
    if closed or len(data) >= MAX_RESPONSE_HEAD_BYTES:
        assert outcome is not None  # never waits past the close or the limit


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=50))
def test_feeding_in_pieces_decides_as_the_whole_does(data: bytes, step: int) -> None:
    """The checker calls judge after every read: the first decision equals the decision on all of it
    when the answer is complete (or the same kind of failure seen earlier)."""
    data = OK_HEAD[: len(OK_HEAD) // 2] + data
    whole = judge(data, True, "200")
    first = None
    for end in range(step, len(data) + step, step):
        first = judge(data[:end], end >= len(data), "200")
        if first is not None:
            break
    assert whole is not None and first is not None
    assert first.passed == whole.passed
