"""The proxy's pure decisions about what a request may be (``portside.proxy.http``)."""

from __future__ import annotations

import pytest

from portside.proxy.http import absolute_form, connection_listed, upgrade_allowed, version_status, without_listed


@pytest.mark.parametrize(
    ("value", "listed"),
    [
        (b"keep-alive", set()),
        (b"close", set()),
        (b"Upgrade", set()),
        (b"keep-alive, X-Hop-A, x-hop-b", {b"x-hop-a", b"x-hop-b"}),
        # Framing fields and Host are never removed by a peer's Connection header.
        (b"content-length", set()),
        (b"Content-Length, Transfer-Encoding, HOST", set()),
        (b"close, content-length, X-Private", {b"x-private"}),
        (b" transfer-encoding ,host,keep-alive", set()),
    ],
)
def test_connection_lists_hop_by_hop_fields_but_never_framing_or_host(value: bytes, listed: set[bytes]) -> None:
    assert connection_listed(value) == listed


def test_a_listed_framing_field_survives_the_rewrite() -> None:
    lines = [b"POST", b" ", b"/", b" HTTP/1.1\r\n"]
    for name, value in ((b"Host", b"a"), (b"Content-Length", b"5"), (b"X-Private", b"p")):
        lines += [name, b": ", value, b"\r\n"]
    kept = without_listed(lines, 4, connection_listed(b"content-length, host, x-private"))
    assert b"".join(kept) == b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("1.1", 0),
        ("1.0", 0),
        ("1.2", 0),  # a later HTTP/1 minor version is served as HTTP/1.1 (RFC 9110 §6.2)
        ("1.9", 0),
        ("2.0", 505),
        ("3.0", 505),
        ("9.9", 505),
        ("0.9", 400),
        ("0.0", 400),
        ("", 400),
        ("1", 400),
        ("x.1", 400),
    ],
)
def test_version_status(version: str, status: int) -> None:
    assert version_status(version) == status


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (b"http://a.example/x?y=1", (b"a.example", b"/x?y=1")),
        (b"HTTP://a.example:8080/x", (b"a.example:8080", b"/x")),
        (b"https://a.example", (b"a.example", b"/")),
        (b"http://a.example?q", (b"a.example", b"/?q")),
        (b"http://user:pw@a.example/p", (b"a.example", b"/p")),
        (b"http://a.example/p#frag", (b"a.example", b"/p")),
        (b"http:///nohost", None),
        (b"http://", None),
        (b"ftp://a.example/x", None),
        (b"a.example:443", None),  # authority-form is for CONNECT only
        (b"x", None),
    ],
)
def test_absolute_form(url: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert absolute_form(url) == expected


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (b"websocket", True),
        (b"WebSocket", True),
        (b"h2c, websocket", True),
        (b"h2c", False),
        (b"HTTP/2.0", False),
        (b"TLS/1.2", False),
        (b"", False),
        (b"websockets", False),
    ],
)
def test_only_websocket_upgrades_are_passed_on(value: bytes, allowed: bool) -> None:
    assert upgrade_allowed(value) is allowed
