"""One request/response exchange between a client connection and a target.

Theory of operation
-------------------
The client connection parses a request head and hands it here (``start``). The
exchange asks the listener's routing snapshot for an action; for ``forward`` it
picks a target, takes an idle keep-alive connection from the target's pool (or
opens one), writes the rewritten head, and streams the body as the client sends
it. The target's response is streamed back with framing the client can use.

Framing of responses (RFC 9112 §6.3): answers to HEAD and every 1xx, 204 and
304 response have no body whatever their headers say; a 1xx is relayed and the
final response still follows; a response with neither Content-Length nor
chunked encoding is read until the target closes, re-framed as chunked for an
HTTP/1.1 client, and its connection is never pooled.

Failures: no eligible target → 503; connect failure or an invalid response →
502; no response within the idle timeout → 504. A request is retried at most
once, on another target, only when (a) no connection could be established, or
(b) a reused keep-alive connection died before any response byte and the
request is idempotent without a body — and only while the retry budget (10 %
of requests over the last 10 s) allows.
"""

from __future__ import annotations

import asyncio
from random import getrandbits
from typing import TYPE_CHECKING

from portside.proxy.http import (
    CONNECTION,
    CONTENT_LENGTH,
    IDEMPOTENT_METHODS,
    OTHER_HOP_BY_HOP,
    REASONS,
    TRANSFER_ENCODING,
    UPGRADE,
    connection_listed,
    error_response,
    field_kind,
    field_kinds,
    simple_response,
    without_listed,
)
from portside.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from portside.proxy.client import ClientConnection
    from portside.proxy.routes import ForwardPlan
    from portside.proxy.targets import GroupRuntime, TargetRuntime

NO_BODY_STATUSES = frozenset({204, 304})
# Request body held while the request waits for a target connection; past it, reading from the
# client pauses until the connection is there (without it a client could park gigabytes here).
BODY_BUFFER_BYTES = 64 * 1024


class Exchange:
    __slots__ = (
        "client", "method", "url", "head", "has_body", "chunked_in", "body_buffer", "body_done",
        "keep_alive", "upgrade", "group", "target", "upstream", "reused", "attempts", "response_started",
        "chunked_out", "until_close", "is_head", "finished", "upstream_active", "sticky_cookie",
        "started_at", "interim", "headers", "connecting", "buffered",
    )

    def __init__(self, client: ClientConnection, method: bytes, url: bytes, head: bytes, has_body: bool,
                 chunked_in: bool, keep_alive: bool, upgrade: bool, headers: list[tuple[bytes, bytes]]) -> None:
        self.client = client
        self.headers = headers  # the client's raw header list (read only by header-matching rules)
        self.method = method
        self.url = url
        self.head = head  # the rewritten request head, complete, ready to send
        self.has_body = has_body
        self.chunked_in = chunked_in
        self.body_buffer: list[bytes] = []
        self.buffered = 0  # bytes in body_buffer: past BODY_BUFFER_BYTES, the client is not read
        self.body_done = not has_body
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.group: GroupRuntime | None = None
        self.target: TargetRuntime | None = None
        self.upstream: UpstreamConnection | None = None
        self.reused = False
        self.attempts = 0
        self.response_started = False
        self.chunked_out = False
        self.until_close = False
        self.is_head = method == b"HEAD"
        self.finished = False
        self.upstream_active = False
        self.sticky_cookie: bytes | None = None
        self.started_at = 0.0
        self.interim = False
        self.connecting: asyncio.Future[None] | None = None  # a connect to ``target`` in progress

    # -- starting

    def forward(self, plan: ForwardPlan, now: float) -> None:
        self.started_at = now
        self.client.runtime.requests += 1  # the retry budget is a share of these
        group, target, cookie = plan.choose(self.client.cookie_header, now)
        self.group = group
        if group is not None:
            group.requests += 1
        self.sticky_cookie = cookie
        if target is None:
            self.respond_error(503)
            return
        self._send_to(target)

    def _send_to(self, target: TargetRuntime) -> None:
        self.target = target
        target.in_flight += 1
        self.attempts += 1
        conn = target.pool.take_idle()
        if conn is not None:
            self.reused = True
            self._write_request(conn)
        else:
            self.reused = False
            task = asyncio.ensure_future(self._connect(target))
            self.connecting = task
            target.connecting.add(self)
            self.client.runtime.track(task)

    def target_went_away(self) -> None:
        """Our target is draining or gone while we still connect to it: nothing was sent, try another.

        A copy whose container died takes its bridge address with it, and a SYN to that address is
        black-holed (no RST): without this the connect would wait for the deregistration delay.
        """
        task, self.connecting = self.connecting, None
        if task is not None and not task.done():
            task.cancel()

    async def _connect(self, target: TargetRuntime) -> None:
        try:
            conn = await target.pool.connect()
        except asyncio.CancelledError:
            target.connecting.discard(self)
            if self.connecting is not None:  # cancelled by the runtime shutting down, not by target_went_away
                raise
            self._release_target()
            if not self.finished and not self._retry(target, connect_failed=True):
                self.respond_error(502)
            return
        except asyncio.TimeoutError:
            self._connected(target)
            self._release_target()
            if not self.finished:
                self.respond_error(504)
            return
        except OSError:
            self._connected(target)
            self._release_target()
            if not self.finished and not self._retry(target, connect_failed=True):
                self.respond_error(502)
            return
        self._connected(target)
        if self.finished:  # the client went away while we connected
            target.pool.release(conn)
            return
        self._write_request(conn)

    def _connected(self, target: TargetRuntime) -> None:
        target.connecting.discard(self)
        self.connecting = None

    def _write_request(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        self.upstream_active = False
        if self.client._write_paused:
            conn.transport.pause_reading()  # the client is not reading: nor do we, from its target
        if self.body_buffer:
            data = self.head + b"".join(self.body_buffer)
            self.body_buffer = []
            if self.buffered > BODY_BUFFER_BYTES:
                self.client.resume_reading_for_target()
            self.buffered = 0
        else:
            data = self.head
        if self.body_done and self.chunked_in:
            data += b"0\r\n\r\n"
        conn.send(self, data)

    # -- the request body, as the client sends it

    def request_body(self, chunk: bytes) -> None:
        if self.chunked_in:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.write(chunk)
        else:
            self.body_buffer.append(chunk)
            was = self.buffered
            self.buffered = was + len(chunk)
            if was <= BODY_BUFFER_BYTES < self.buffered:
                self.client.pause_reading_for_target()

    def request_done(self) -> None:
        self.body_done = True
        if self.chunked_in and self.upstream is not None and not self.upstream.closed:
            self.upstream.transport.write(b"0\r\n\r\n")

    # -- the response, as the target sends it

    def response_head(self, conn: UpstreamConnection, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        client = self.client
        if status < 200 and status != 101:
            self.interim = True
            if not client.http11:
                return  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
            lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
            lines.extend(b"%s: %s\r\n" % h for h in headers)
            lines.append(b"\r\n")
            client.write(b"".join(lines))
            return
        if status == 101 and not self.upgrade:
            # Switching protocols on a request that asked for no upgrade (or one the proxy
            # dropped, such as h2c): never a tunnel. An invalid response: 502.
            conn.exchange = None
            conn.close()
            self._fail_after_send(conn, status=502, retry=False)
            return
        self.interim = False
        self.response_started = True
        group = self.group
        if group is not None:  # metrics: counters only, no per-request timers
            codes = group.by_code
            codes[status] = codes.get(status, 0) + 1
        if self.upgrade and status != 101:
            self.keep_alive = False  # the parser has switched to upgrade mode: this connection ends here
        if status == 101:
            # llhttp reports a 101 as a complete message before it raises the upgrade: that
            # completion must not end the exchange (``upgraded`` takes over), so treat it as interim.
            self.interim = True
            lines = [b"HTTP/1.1 101 %s\r\n" % reason]
            lines.extend(b"%s: %s\r\n" % h for h in headers)
            lines.append(b"\r\n")
            client.write(b"".join(lines))
            return
        content_length = False
        chunked = False
        connection = b""
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b""))]
        append = out.append
        kinds = field_kinds
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = field_kind(name)
            if kind == CONTENT_LENGTH:
                if status == 204:
                    continue  # RFC 9110 §8.6: never sent with a 204 (a 304's describes the selected representation)
                content_length = True
            elif kind == TRANSFER_ENCODING:
                chunked = b"chunked" in value.lower()
                continue
            elif kind == CONNECTION:
                connection = connection + b"," + value if connection else value
                continue
            elif kind == UPGRADE or kind == OTHER_HOP_BY_HOP:
                continue
            append(name)
            append(b": ")
            append(value)
            append(b"\r\n")
        if connection:
            listed = connection_listed(connection)
            if listed:  # rare: drop the fields the target named in Connection
                out = without_listed(out, 1, listed)
                append = out.append
        bodiless = self.is_head or status in NO_BODY_STATUSES
        if not bodiless and not content_length:
            if client.http11:
                self.chunked_out = True
                append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0 knows no chunked: the body ends when we close
            if not chunked:
                self.until_close = True  # read until the target closes; never pooled
                conn.keep_alive = False
        if self.sticky_cookie is not None:
            append(self.sticky_cookie)
        append(b"Connection: keep-alive\r\n\r\n" if self.keep_alive else b"Connection: close\r\n\r\n")
        client.write(b"".join(out))
        if self.is_head:
            # httptools cannot be told this answers a HEAD: finish here and start its parser afresh.
            conn.reset_parser()
            self.response_complete(conn)

    def response_body(self, chunk: bytes) -> None:
        if self.finished:
            return
        if self.chunked_out:
            self.client.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self.client.write(chunk)

    def response_complete(self, conn: UpstreamConnection) -> None:
        if self.interim:
            self.interim = False
            return
        if self.finished:
            return
        if self.chunked_out:
            self.client.write(b"0\r\n\r\n")
        self.finished = True
        self.upstream = None
        group = self.group
        if group is not None:
            group.observe_latency(self.client.loop.time() - self.started_at)
        self._release_target()
        if self.until_close or not self.body_done:
            conn.keep_alive = False
        conn.pool.release(conn)
        self.client.exchange_done(self)

    def upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """The target accepted a WebSocket upgrade: both sides become a byte tunnel."""
        if self.finished or not self.upgrade:
            conn.close()
            return
        client = self.client
        conn.exchange = None
        conn.tunnel = client.transport
        client.start_tunnel(conn, self)
        if rest:
            client.transport.write(rest)

    # -- failures

    def upstream_failed(self, conn: UpstreamConnection, invalid: bool) -> None:
        conn.close()
        self._fail_after_send(conn, status=502)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        if self.finished:
            return
        if self.response_started and self.until_close:
            self.response_complete(conn)  # a response framed by close ends here
            return
        self._fail_after_send(conn, status=502)

    def upstream_timeout(self, status: int = 504) -> None:
        conn = self.upstream
        if conn is not None:
            conn.close()
        if not self.finished:
            self._fail_after_send(conn, status=status, retry=False)

    def _fail_after_send(self, conn: UpstreamConnection | None, status: int, retry: bool = True) -> None:
        if self.finished:
            return
        self.upstream = None
        target = self.target
        self._release_target()
        if self.response_started:
            self.finished = True
            self.client.abort()  # half a response went out: the client must see the break
            return
        if (
            retry
            and conn is not None
            and self.reused
            and not self.upstream_active
            and not self.has_body
            and self.method in IDEMPOTENT_METHODS
            and target is not None
            and self._retry(target, connect_failed=False)
        ):
            return
        self.respond_error(status)

    def _retry(self, failed: TargetRuntime, connect_failed: bool) -> bool:
        runtime = self.client.runtime
        if self.attempts > 1 or self.group is None or not runtime.may_retry():
            return False
        if not connect_failed and (self.has_body or self.method not in IDEMPOTENT_METHODS):
            return False
        other = self.group.pick(self.client.loop.time(), exclude=failed)
        if other is None:
            return False
        runtime.count_retry()
        self._send_to(other)
        return True

    def _release_target(self) -> None:
        target = self.target
        if target is not None:
            target.in_flight -= 1
            if target.draining and target.in_flight == 0:
                self.client.runtime.target_idle(target)
            self.target = None

    # -- answers made by the load balancer itself

    def respond_error(self, status: int) -> None:
        if self.finished:
            return
        self.finished = True
        self.client.listener.count_elb_error(status)
        if not self.body_done:
            self.keep_alive = False  # we did not read the whole request body
        self.client.write(error_response(status, self.keep_alive, self.client.listener.config.server_header))
        self.client.exchange_done(self)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.finished = True
        if not self.body_done:
            self.keep_alive = False
        server = self.client.listener.config.server_header
        self.client.write(simple_response(status, headers, body, self.keep_alive, self.is_head, server))
        self.client.exchange_done(self)

    def abandon(self) -> None:
        """The client went away: drop the upstream connection (it may hold half a response)."""
        if self.finished:
            return
        self.finished = True
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            conn.exchange = None
            conn.close()
        self._release_target()

    # -- flow control between the two sockets

    def pause_client_reading(self) -> None:
        self.client.pause_reading_for_upstream()

    def resume_client_reading(self) -> None:
        self.client.resume_reading_for_upstream()


def trace_id(epoch_hex: bytes) -> bytes:
    """``1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`` (not a syscall: random, not urandom)."""
    return b"1-%s-%024x" % (epoch_hex, getrandbits(96))

