"""A bound listener: its socket, its TLS context, its live connections and routing snapshot."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING, Any

from portside.core.lb.model import Listener
from portside.core.lb.runtime import ListenerBindError
from portside.proxy.client import ClientConnection
from portside.proxy.ports import describe_port_holder
from portside.proxy.tls import apply_policy, server_context

if TYPE_CHECKING:
    from portside.proxy.routes import ListenerRoutes
    from portside.proxy.runtime import ProxyRuntime

BACKLOG = 4096
FULL_RECHECK_S = 0.25


class ListenerRuntime:
    def __init__(self, runtime: ProxyRuntime, config: Listener, routes: ListenerRoutes) -> None:
        self.runtime = runtime
        self.config = config
        self.routes = routes
        self.connections: set[ClientConnection] = set()
        self.scheme = "https" if config.protocol == "HTTPS" else "http"
        self.forwarded_proto_port = b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (
            self.scheme.encode(), config.port
        )
        self.sock: socket.socket | None = None
        self.server: asyncio.AbstractServer | None = None
        self.ssl: Any = None
        self._full_until = 0.0  # until then, at the connection limit, refuse without looking for idle ones
        # CloudWatch's per-load-balancer counters (control/controllers/alb_metrics.py reads them)
        self.requests = 0  # requests routed on this listener
        self.elb_errors: dict[int, int] = {}  # responses the load balancer made itself, by status

    def count_elb_error(self, status: int) -> None:
        self.elb_errors[status] = self.elb_errors.get(status, 0) + 1
        self.runtime.count_elb_error(status)

    def bind(self) -> None:
        """Bind and listen now (synchronously), so CreateListener can fail before anything is stored."""
        family = socket.AF_INET6 if ":" in self.config.bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.bind_host, self.config.port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                holder = describe_port_holder(self.config.port)
                raise ListenerBindError(
                    f"Port {self.config.port} on {self.config.bind_host} is already in use by {holder}."
                ) from exc
            raise ListenerBindError(f"Cannot listen on {self.config.bind_host}:{self.config.port}: {exc.strerror}.") from exc
        sock.setblocking(False)
        self.sock = sock
        if self.config.protocol == "HTTPS":
            try:
                self.ssl = server_context(self.config.certificates, self.config.ssl_policy)
            except (OSError, ValueError) as exc:
                sock.close()
                raise ListenerBindError(f"Cannot load the listener's certificate: {exc}.") from exc

    async def serve(self) -> None:
        assert self.sock is not None
        self.server = await self.runtime.loop.create_server(
            lambda: ClientConnection(self),  # type: ignore[arg-type, return-value]  # a protocol by its methods
            sock=self.sock, ssl=self.ssl, backlog=BACKLOG,
        )

    def admit(self, conn: ClientConnection) -> bool:
        """Take a new client connection, or refuse it at ``max_client_connections``: first an
        idle keep-alive connection (no request in progress) is closed to make room.

        Finding one walks every connection; after a walk that found none, new connections are
        refused without another walk for ``FULL_RECHECK_S``, so a flood at the limit costs no
        more than the refusals."""
        connections = self.connections
        if len(connections) >= self.runtime.max_client_connections:
            now = self.runtime.loop.time()
            if now < self._full_until:
                return False
            idle = next((c for c in connections if c.idle()), None)
            if idle is None:
                self._full_until = now + FULL_RECHECK_S
                return False
            connections.discard(idle)
            idle.transport.close()
            self.runtime.count_evicted_connection()
        connections.add(conn)
        return True

    def reconfigure(self, config: Listener, routes: ListenerRoutes) -> None:
        changed = config.certificates != self.config.certificates or config.ssl_policy != self.config.ssl_policy
        if changed and config.protocol == "HTTPS":
            fresh = server_context(config.certificates, config.ssl_policy)
            if self.ssl is not None:
                # New handshakes use the new certificates and policy; the context object is shared with the server.
                apply_policy(self.ssl, config.ssl_policy)
                self.ssl.sni_callback = fresh.sni_callback
                self.ssl.load_cert_chain(config.certificates[0].cert_path, config.certificates[0].key_path)
        self.config = config
        self.routes = routes

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        elif self.sock is not None:
            self.sock.close()
        for conn in list(self.connections):
            if conn.current is None:
                conn.transport.close()
