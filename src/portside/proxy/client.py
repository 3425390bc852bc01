"""A client connection to a listener: parse requests, rewrite heads, hand them to exchanges.

Requests are served one at a time per connection, in order (HTTP/1.1
pipelining is honoured by queueing: while one request is in flight, later ones
are parsed, buffered and read from the socket no further). Everything here runs
on the event loop thread as plain callbacks; the hot path avoids coroutines.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, NoReturn

import httptools

from portside.proxy.exchange import Exchange, trace_id
from portside.proxy.http import (
    CONNECTION,
    CONTENT_LENGTH,
    COOKIE,
    HOST,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_REQUEST_TARGET_BYTES,
    PASS,
    TRACE_ID,
    TRANSFER_ENCODING,
    UPGRADE,
    X_FORWARDED_FOR,
    absolute_form,
    connection_listed,
    error_response,
    field_kind,
    field_kinds,
    upgrade_allowed,
    version_status,
    without_listed,
)

if TYPE_CHECKING:
    from portside.proxy.listener import ListenerRuntime
    from portside.proxy.runtime import ProxyRuntime
    from portside.proxy.upstream import UpstreamConnection

MAX_XFF_ADDRESSES = 30  # more than this in X-Forwarded-For: ALB answers 463


class ClientConnection:
    """An asyncio protocol (by its methods: a plain class, so mypyc can compile it natively)."""

    def __init__(self, listener: ListenerRuntime) -> None:
        self.listener = listener
        self.runtime: ProxyRuntime = listener.runtime
        self.loop: asyncio.AbstractEventLoop = listener.runtime.loop
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        # Any digits as version: version_status() decides (1.x served as 1.1, 2+ is 505, 0.9 400).
        self.parser.set_dangerous_leniencies(lenient_version=True)
        self.peer_ip = ""
        self.peer_ip_bytes = b""
        self.current: Exchange | None = None
        self.queue: deque[tuple[Any, ...]] = deque()
        self.receiving: Exchange | None = None
        self.cookie_header: bytes | None = None
        self.http11: bool = True
        self.last_active = 0.0
        self.closed = False
        self.tunnel: UpstreamConnection | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        # When the head of the message being parsed began (its first byte), 0.0 between heads:
        # the runtime's tick answers 408 to a head that takes longer than its deadline.
        self.head_started = 0.0
        # The status a rejected request gets once the requests before it are answered (-1: none;
        # 0: close without answering, after a request that asked to close the connection).
        self.rejected = -1
        # bit 1: queued requests, 2: upstream backpressure, 4: rejected, 8: waiting for a target
        self._paused_by = 0
        self._write_paused: bool = False
        # While a target's bytes are being parsed, what we send the client is collected here and
        # written once (a response head and its body in one send, not two).
        self.batch: list[bytes] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.peer_ip_bytes = self.peer_ip.encode()
        self.last_active = self.loop.time()
        if not self.listener.admit(self):
            self.closed = True
            self.runtime.count_refused_connection()
            transport.abort() if hasattr(transport, "abort") else transport.close()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # refused at the connection limit
        self.last_active = self.loop.time()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        if self.rejected >= 0:
            return  # read after a request that ends this connection: nothing more is parsed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The upgrade request itself was handed on; its target decides (101 or not). Nothing
            # after it is parsed: it is tunnelled after a 101, and dropped with the connection else.
            self._stop_reading(0)
        except httptools.HttpParserError:
            status = self.rejected
            self.rejected = -1
            self._bad_request(status if status >= 0 else 400)

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.listener.connections.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
            self.runtime.tunnel_closed(self)
        if self.current is not None:
            self.current.abandon()
            self.current = None
        if self.receiving is not None and self.receiving is not self.current:
            self.receiving.abandon()
        self.queue.clear()

    def pause_writing(self) -> None:
        self._write_paused = True
        exchange = self.current
        if exchange is not None and exchange.upstream is not None:
            exchange.upstream.transport.pause_reading()
        elif self.tunnel is not None:
            self.tunnel.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        exchange = self.current
        if exchange is not None and exchange.upstream is not None and not exchange.upstream.closed:
            exchange.upstream.transport.resume_reading()
        elif self.tunnel is not None and not self.tunnel.closed:
            self.tunnel.transport.resume_reading()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self.head_started = self.last_active

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_REQUEST_TARGET_BYTES:
            self._reject(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        headers = self._headers
        if self._header_bytes > MAX_HEADER_BYTES or len(headers) >= MAX_HEADER_FIELDS:
            self._reject(431)
        headers.append((name, value))

    def _reject(self, status: int) -> NoReturn:
        """Stop parsing this request: it is answered ``status`` (data_received catches this)."""
        self.rejected = status
        raise httptools.HttpParserError(f"request rejected with {status}")

    def on_headers_complete(self) -> None:
        self.head_started = 0.0
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        if version == "1.1":
            self.http11 = True
        elif version == "1.0":
            self.http11 = False
        else:  # rare: HTTP/1.2 and up is served as 1.1; 0.9 and 2+ are refused
            status = version_status(version)
            if status:
                self._reject(status)
            self.http11 = True
        if method == b"CONNECT":
            self._reject(405)  # never a tunnel to wherever the client names
        keep_alive = parser.should_keep_alive()
        listener = self.listener
        host = b""
        hosts = 0
        xff = b""
        trace = b""
        chunked = False
        content_length = False
        upgrade = b""
        connection = b""
        cookie: bytes | None = None
        lines = [method, b" ", self._url, b" HTTP/1.1\r\n"]
        append = lines.append
        kinds = field_kinds
        for name, value in self._headers:
            kind = kinds.get(name)
            if kind is None:
                kind = field_kind(name)
            if kind != PASS:
                if kind == HOST:
                    host = value
                    hosts += 1
                elif kind == COOKIE:
                    cookie = value if cookie is None else cookie + b"; " + value
                elif kind == CONTENT_LENGTH:
                    content_length = value.strip() != b"0"
                elif kind == X_FORWARDED_FOR:
                    xff = xff + b", " + value if xff else value  # repeated fields are one list
                    continue
                elif kind == TRACE_ID:
                    trace = value
                    continue
                elif kind == CONNECTION:
                    connection = connection + b"," + value if connection else value
                    continue
                elif kind == TRANSFER_ENCODING:
                    if value.strip().lower() != b"chunked":
                        # The body is re-framed as chunked alone: another coding would reach the
                        # target undeclared. RFC 9112 §6.1: 501 for a coding we do not apply.
                        self._reject(501)
                    chunked = True
                    continue
                elif kind == UPGRADE:
                    upgrade = value
                    continue
                else:  # the other hop-by-hop fields, and X-Forwarded-Proto/-Port (set below)
                    continue
            append(name)
            append(b": ")
            append(value)
            append(b"\r\n")
        if connection:
            listed = connection_listed(connection)
            if listed:  # rare: drop the fields the client named in Connection
                lines = without_listed(lines, 4, listed)
                append = lines.append
        url = self._url
        if url[:1] != b"/" and url != b"*":  # rare: absolute-form (RFC 9112 §3.2.2)
            target = absolute_form(url)
            if target is None:
                self._reject(400)
            host, url = target
            hosts = 1  # the authority is the Host; any Host field is ignored and replaced
            lines = without_listed(lines, 4, frozenset({b"host"}))
            lines[2] = url
            append = lines.append
            append(b"Host: " + host + b"\r\n")
        if hosts != 1 and (hosts or self.http11):
            self._reject(400)  # RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0
        if upgrade:
            if parser.should_upgrade() and upgrade_allowed(upgrade):
                upgrade = b"websocket"
            else:
                # Not tunnelled: the field is dropped, and as the parser stops after an upgrade
                # request (parser.should_upgrade()), the connection ends with its response.
                upgrade = b""
                if parser.should_upgrade():
                    keep_alive = False
        if xff:
            if xff.count(b",") >= MAX_XFF_ADDRESSES:
                self._reject(463)
            append(b"X-Forwarded-For: " + xff + b", " + self.peer_ip_bytes + b"\r\n")
        else:
            append(b"X-Forwarded-For: " + self.peer_ip_bytes + b"\r\n")
        append(listener.forwarded_proto_port)
        if trace and b"Root=" in trace:
            parts = [p for p in trace.split(b";") if not p.strip().startswith(b"Self=")]
            append(b"X-Amzn-Trace-Id: Self=" + trace_id(self.runtime.epoch_hex) + b";" + b";".join(parts) + b"\r\n")
        else:
            append(b"X-Amzn-Trace-Id: Root=" + trace_id(self.runtime.epoch_hex) + b"\r\n")
        if chunked:
            append(b"Transfer-Encoding: chunked\r\n")
        if upgrade:
            append(b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n\r\n")
        else:
            append(b"\r\n")
        exchange = Exchange(
            self, method, url, b"".join(lines), chunked or content_length, chunked, keep_alive, bool(upgrade),
            self._headers,
        )
        self.receiving = exchange
        if self.current is None:
            self.cookie_header = cookie
            self._start(exchange, host)
        else:
            self.queue.append((exchange, host, cookie))
            self._pause(1)

    def on_body(self, body: bytes) -> None:
        exchange = self.receiving
        if exchange is not None and not exchange.finished:
            exchange.request_body(body)

    def on_message_complete(self) -> None:
        exchange = self.receiving
        self.receiving = None
        if exchange is not None:
            exchange.request_done()
            if exchange.finished and exchange is self.current:
                self._next()

    # -- serving

    def _start(self, exchange: Exchange, host: bytes) -> None:
        self.current = exchange
        listener = self.listener
        listener.requests += 1
        action = listener.routes.route(exchange, host, self.peer_ip)
        action(exchange, host)

    def exchange_done(self, exchange: Exchange) -> None:
        if exchange is not self.current:
            return
        if self._paused_by & 10:
            # The upload was paused by the target connection's backpressure (or while waiting for
            # one), and that connection is done with: read on (the rest of an unfinished body is
            # read and dropped).
            self._resume(10)
        if not exchange.keep_alive:
            self.current = None
            self.flush()
            self.transport.close()
            return
        if not exchange.body_done:
            return  # wait for the rest of the request body (on_message_complete moves on)
        self._next()

    def _next(self) -> None:
        self.current = None
        self.last_active = self.loop.time()
        if self.queue:
            exchange, host, cookie = self.queue.popleft()
            if not self.queue:
                self._resume(1)
            self.cookie_header = cookie
            self._start(exchange, host)
        elif self.rejected >= 0:
            self._bad_request(self.rejected)  # every request before the rejected one is answered

    def write(self, data: bytes) -> None:
        batch = self.batch
        if batch is not None:
            batch.append(data)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        batch = self.batch
        if batch:
            self.batch = []
            self.transport.write(b"".join(batch) if len(batch) > 1 else batch[0])

    def abort(self) -> None:
        self.current = None
        self.batch = None
        self.transport.abort() if hasattr(self.transport, "abort") else self.transport.close()

    def start_tunnel(self, upstream: UpstreamConnection, exchange: Exchange) -> None:
        self.tunnel = upstream
        self.current = None
        self.queue.clear()
        self.rejected = -1
        self._resume(self._paused_by & 5)  # reading stopped at the upgrade request; bytes flow now
        self.runtime.tunnel_opened(self, exchange)

    def _bad_request(self, status: int) -> None:
        """Answer ``status`` (0: nothing) and close, once the requests before this one are answered."""
        if self.closed or self.transport.is_closing():
            return
        broken = self.receiving
        if broken is not None:  # the error is in a request body: that request is never completed
            self.receiving = None
            if broken is self.current:
                self.current = None
                half_answered = broken.response_started and not broken.finished
                broken.abandon()
                if half_answered:
                    self.abort()  # half a response went out: the client must see the break
                    return
            else:
                self.queue.pop()  # it was the last request queued
        if self.current is not None or self.queue:
            self._stop_reading(status)  # _next answers it when its turn comes
            return
        if status:
            # after a batched response before it
            self.write(error_response(status, False, self.listener.config.server_header))
            self.listener.count_elb_error(status)
        self.flush()
        self.transport.close()

    def _stop_reading(self, status: int) -> None:
        self.rejected = status
        self._pause(4)

    # -- read pausing has two independent causes

    def _pause(self, bit: int) -> None:
        if not self._paused_by:
            self.transport.pause_reading()
        self._paused_by |= bit

    def _resume(self, bit: int) -> None:
        was = self._paused_by
        self._paused_by &= ~bit
        if was and not self._paused_by and not self.closed:
            self.transport.resume_reading()
            if self.head_started:
                self.head_started = self.loop.time()  # a head's deadline runs only while we read

    def reading(self) -> bool:
        """Whether the proxy reads from this client now (no cause to pause holds)."""
        return not self._paused_by

    def idle(self) -> bool:
        """No request in progress: nothing read of one, nothing queued, none in flight, no tunnel."""
        return self.current is None and not self.head_started and self.tunnel is None and not self.closed

    def head_timed_out(self) -> None:
        """The request head being read missed its deadline (counted from its first byte): 408."""
        self.head_started = 0.0
        self._bad_request(408)

    def pause_reading_for_upstream(self) -> None:
        self._pause(2)

    def resume_reading_for_upstream(self) -> None:
        self._resume(2)

    def pause_reading_for_target(self) -> None:
        self._pause(8)

    def resume_reading_for_target(self) -> None:
        self._resume(8)
