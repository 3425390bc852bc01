"""Connections from the proxy to one target, and the keep-alive pool they return to.

An ``UpstreamConnection`` parses responses with httptools and hands every event to
the exchange it currently serves. It never decides anything about the client: it
reports, and the exchange acts. A connection goes back to its target's pool only
after a complete response on a connection both sides keep alive, whose framing
was explicit (a response read until close is never pooled).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httptools

if TYPE_CHECKING:
    from portside.proxy.exchange import Exchange

MAX_IDLE_PER_TARGET = 512
CONNECT_TIMEOUT_S = 10.0  # ALB: connect timeout to a target, then 504


class UpstreamConnection:
    """An asyncio protocol (by its methods: a plain class, so mypyc can compile it natively)."""

    __slots__ = (
        "pool", "transport", "parser", "exchange", "headers", "reason", "closed", "framed", "keep_alive",
        "tunnel", "last_active", "head_done",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: Any = None
        self.parser = response_parser(self)
        self.exchange: Exchange | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.closed = False
        self.framed = False
        self.keep_alive = True
        self.tunnel: Any = None  # the client transport once a WebSocket upgrade succeeded
        self.last_active = 0.0
        self.head_done = False

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.last_active = self.pool.loop.time()  # the tunnel's idle timeout counts both ways
            self.tunnel.write(data)
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes nobody asked for: the connection is no longer trustworthy
            return
        exchange.upstream_active = True
        client = exchange.client
        client.batch = []
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            if self.exchange is not None:
                client.flush()
                self.exchange.upgraded(self, data[offset:])
        except httptools.HttpParserError:
            self.keep_alive = False
            if self.exchange is not None:
                self.exchange.upstream_failed(self, invalid=True)
        finally:
            client.flush()
            client.batch = None

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        if self.exchange is not None:
            self.exchange.upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_client_reading()
        elif self.tunnel is not None:
            self.tunnel.pause_reading()  # a tunnel's target is slower than its client: wait for it

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_client_reading()
        elif self.tunnel is not None and not self.tunnel.is_closing():
            self.tunnel.resume_reading()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self.headers = []
        self.reason = b""
        self.framed = False
        self.head_done = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        exchange = self.exchange
        if exchange is not None:
            self.keep_alive = self.parser.should_keep_alive()
            exchange.response_head(self, self.parser.get_status_code(), self.reason, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.response_complete(self)

    # -- used by the exchange

    def send(self, exchange: Exchange, data: bytes) -> None:
        self.exchange = exchange
        self.transport.write(data)

    def reset_parser(self) -> None:
        """A response with no body whatever its headers say (HEAD): start the next one afresh."""
        self.parser = response_parser(self)

    def close(self) -> None:
        self.keep_alive = False
        if not self.closed and self.transport is not None:
            self.transport.close()
        self.closed = True


def response_parser(conn: UpstreamConnection) -> httptools.HttpResponseParser:
    """A parser for a target's responses, as tolerant as nginx and HAProxy: lines of the head may
    end in a bare LF (busybox httpd CGI scripts, many small embedded servers). Requests from
    clients stay strict (CRLF only)."""
    parser = httptools.HttpResponseParser(conn)
    parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
    return parser


class UpstreamPool:
    """Idle keep-alive connections to one target (LIFO: the warmest connection first)."""

    __slots__ = ("loop", "host", "port", "ssl", "idle", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, ssl: Any = None) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.ssl = ssl
        self.idle: list[UpstreamConnection] = []
        self.closed = False

    def take_idle(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        _transport, conn = await asyncio.wait_for(
            self.loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port, ssl=self.ssl,  # type: ignore[type-var]
                                        server_hostname=self.host if self.ssl else None),
            CONNECT_TIMEOUT_S,
        )
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        conn.exchange = None
        if self.closed or conn.closed or not conn.keep_alive or len(self.idle) >= MAX_IDLE_PER_TARGET:
            conn.close()
            return
        conn.last_active = self.loop.time()
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close_idle(self, older_than: float | None = None) -> None:
        keep = []
        for conn in self.idle:
            if older_than is None or conn.last_active < older_than:
                conn.close()
            else:
                keep.append(conn)
        self.idle = keep

    def close(self) -> None:
        self.closed = True
        self.close_idle()
