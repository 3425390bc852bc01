"""A client connection to a listener: parse requests, rewrite heads, hand them to exchanges.

Requests are served one at a time per connection, in order (HTTP/1.1
pipelining is honoured by queueing: while one request is in flight, later ones
are parsed, buffered and read from the socket no further). Everything here runs
on the event loop thread as plain callbacks; the hot path avoids coroutines.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools

from portside.proxy.exchange import Exchange, trace_id
from portside.proxy.http import (
    CONNECTION,
    CONTENT_LENGTH,
    COOKIE,
    HOST,
    PASS,
    TRACE_ID,
    TRANSFER_ENCODING,
    UPGRADE,
    X_FORWARDED_FOR,
    connection_listed,
    error_response,
    field_kind,
    field_kinds,
    without_listed,
)

if TYPE_CHECKING:
    from portside.proxy.listener import ListenerRuntime
    from portside.proxy.runtime import ProxyRuntime
    from portside.proxy.upstream import UpstreamConnection

MAX_HEADER_BYTES = 64 * 1024
MAX_XFF_ADDRESSES = 30  # more than this in X-Forwarded-For: ALB answers 463


class ClientConnection:
    """An asyncio protocol (by its methods: a plain class, so mypyc can compile it natively)."""

    def __init__(self, listener: ListenerRuntime) -> None:
        self.listener = listener
        self.runtime: ProxyRuntime = listener.runtime
        self.loop: asyncio.AbstractEventLoop = listener.runtime.loop
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
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
        self._paused_by = 0  # bit 1: queued requests, bit 2: upstream backpressure
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
        self.listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the upgrade request itself was handed on; its target decides (101 or not)
        except httptools.HttpParserError:
            self._bad_request(400)

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

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("request header too large")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        self.http11 = version == "1.1"
        keep_alive = parser.should_keep_alive()
        listener = self.listener
        host = b""
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
        if xff:
            if xff.count(b",") >= MAX_XFF_ADDRESSES:
                self._bad_request(463)
                return
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
            self, method, self._url, b"".join(lines), chunked or content_length, chunked, keep_alive, bool(upgrade),
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
        action = self.listener.routes.route(exchange, host, self.peer_ip)
        action(exchange, host)

    def exchange_done(self, exchange: Exchange) -> None:
        if exchange is not self.current:
            return
        if self._paused_by & 2:
            # The upload was paused by the target connection's backpressure, and that connection
            # is done with: read on (the rest of an unfinished body is read and dropped).
            self._resume(2)
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
        self.runtime.tunnel_opened(self, exchange)

    def _bad_request(self, status: int) -> None:
        if self.current is None or self.current.finished:
            self.transport.write(error_response(status, keep_alive=False))
            self.runtime.count_elb_error(status)
        self.transport.close()

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

    def pause_reading_for_upstream(self) -> None:
        self._pause(2)

    def resume_reading_for_upstream(self) -> None:
        self._resume(2)
