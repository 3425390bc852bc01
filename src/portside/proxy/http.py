"""HTTP/1.1 constants and canned responses of the proxy (no per-request work here)."""

from __future__ import annotations

import functools
from typing import Final

# RFC 9110 §7.6.1 hop-by-hop fields, plus the ones proxies conventionally strip.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

# What the proxy does with a header field, by its name. Fields it passes on unchanged are PASS.
PASS: Final = 0
HOST: Final = 1
X_FORWARDED_FOR: Final = 2
X_FORWARDED_OTHER: Final = 3  # -Proto and -Port: the load balancer sets its own
TRACE_ID: Final = 4
CONTENT_LENGTH: Final = 5
COOKIE: Final = 6
TRANSFER_ENCODING: Final = 7
UPGRADE: Final = 8
CONNECTION: Final = 9
OTHER_HOP_BY_HOP: Final = 10

_FIELD_KINDS = {
    **dict.fromkeys(HOP_BY_HOP, OTHER_HOP_BY_HOP),
    b"transfer-encoding": TRANSFER_ENCODING,
    b"upgrade": UPGRADE,
    b"connection": CONNECTION,
    b"host": HOST,
    b"x-forwarded-for": X_FORWARDED_FOR,
    b"x-forwarded-proto": X_FORWARDED_OTHER,
    b"x-forwarded-port": X_FORWARDED_OTHER,
    b"x-amzn-trace-id": TRACE_ID,
    b"content-length": CONTENT_LENGTH,
    b"cookie": COOKIE,
}
FIELD_KIND_CACHE_SIZE: Final = 4096
# Field names as received -> kind. Clients and targets send the same few names in the same
# spelling on every message, so one dict read replaces lower-casing and comparing each name.
field_kinds: dict[bytes, int] = {}


def field_kind(name: bytes) -> int:
    """The kind of a field name not yet in ``field_kinds`` (and remember it there)."""
    kind = _FIELD_KINDS.get(name.lower(), PASS)
    if len(field_kinds) >= FIELD_KIND_CACHE_SIZE:
        field_kinds.clear()  # random names cost no more than an uncached lookup
    field_kinds[name] = kind
    return kind


# Connection options that name no header field, and fields a Connection header may never remove:
# the proxy frames every message it forwards itself (Content-Length, Transfer-Encoding) and routes
# by Host. Honouring ``Connection: content-length`` would forward a body with no length, which the
# target then reads as the next request on a pooled connection (request smuggling).
_CONNECTION_OPTIONS = frozenset({b"", b"keep-alive", b"close", b"upgrade"})
NEVER_HOP_BY_HOP = frozenset({b"content-length", b"transfer-encoding", b"host"})


@functools.lru_cache(maxsize=64)  # values repeat ("keep-alive", "Upgrade"): no per-request parsing
def connection_listed(value: bytes) -> frozenset[bytes]:
    """Header names (lower case) a Connection field lists and the proxy drops as hop-by-hop
    (RFC 9110 §7.6.1), less the framing fields and Host, which it never lets a peer remove."""
    return frozenset(token.strip().lower() for token in value.split(b",")) - _CONNECTION_OPTIONS - NEVER_HOP_BY_HOP


def without_listed(lines: list[bytes], first: int, listed: frozenset[bytes]) -> list[bytes]:
    """A head being built (``first`` items of start line, then name, ": ", value, CRLF per field)
    without the fields a Connection header ``listed``."""
    kept = lines[:first]
    for i in range(first, len(lines), 4):
        if lines[i].lower() not in listed:
            kept += lines[i : i + 4]
    return kept


# -- what a request may be (RFC 9112 §2.3, §3); each decision is a small pure function

# Limits on a request head (ALB's: request line 16 KiB, whole head 64 KiB). Past them: 414, 431.
MAX_REQUEST_TARGET_BYTES: Final = 16 * 1024
MAX_HEADER_FIELDS: Final = 100  # HAProxy's tune.http.maxhdr is 101
MAX_HEADER_BYTES: Final = 64 * 1024


def version_status(version: str) -> int:
    """The status a request line's HTTP version gets: 0 when served (1.0, and 1.1 for every 1.x
    with x >= 1, RFC 9110 §6.2), 505 for 2.0 and higher (not on an HTTP/1 connection), 400 for
    HTTP/0.9 and anything else."""
    major, dot, minor = version.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        return 400
    if major == "1":
        return 0
    return 505 if int(major) >= 2 else 400


def absolute_form(url: bytes) -> tuple[bytes, bytes] | None:
    """``(host, origin-form)`` of an absolute-form request target (RFC 9112 §3.2.2), or None when
    ``url`` is not an http(s) URI with an authority. The authority replaces any Host field, less
    its userinfo; an empty path becomes ``/``."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        at = rest.find(stop)
        if 0 <= at < end:
            end = at
    host = rest[:end].rpartition(b"@")[2]
    if not host:
        return None
    path = rest[end:].partition(b"#")[0]
    if not path.startswith(b"/"):
        path = b"/" + path
    return host, path


def upgrade_allowed(value: bytes) -> bool:
    """Whether an Upgrade field offers WebSocket, the only protocol the proxy tunnels (never h2c,
    never anything a target might speak to us unchecked)."""
    for token in value.split(b","):
        if token.strip().partition(b"/")[0].lower() == b"websocket":
            return True
    return False


REASONS = {
    200: b"OK", 201: b"Created", 204: b"No Content", 301: b"Moved Permanently", 302: b"Found",
    304: b"Not Modified", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 413: b"Payload Too Large", 414: b"URI Too Long",
    431: b"Request Header Fields Too Large", 463: b"", 500: b"Internal Server Error", 501: b"Not Implemented",
    502: b"Bad Gateway", 503: b"Service Temporarily Unavailable", 504: b"Gateway Time-out",
    505: b"HTTP Version Not Supported",
}


def error_page(status: int) -> bytes:
    """ALB's nginx-style error page (CRLF line endings), spec alb.md §2.6."""
    title = f"{status} {REASONS.get(status, b'').decode()}".strip()
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode()
    return body


SERVER_HEADER = b"Server: portside\r\n"


def error_response(status: int, keep_alive: bool, server: bool = True) -> bytes:
    """``server``: with the Server header (the listener's ``routing.http.response.server.enabled``)."""
    body = error_page(status)
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 %d %s\r\n%sContent-Type: text/html\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
        % (status, REASONS.get(status, b""), SERVER_HEADER if server else b"", len(body), connection)
    ) + body


def simple_response(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool, head: bool, server: bool = True
) -> bytes:
    lines = [b"HTTP/1.1 %d %s\r\n%s" % (status, REASONS.get(status, b""), SERVER_HEADER if server else b"")]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    lines.append(b"Content-Length: %d\r\nConnection: %s\r\n\r\n" % (len(body), b"keep-alive" if keep_alive else b"close"))
    if not head:
        lines.append(body)
    return b"".join(lines)


# Methods that are safe to send again when a reused connection dies before any response byte.
IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
