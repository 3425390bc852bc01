"""A target whose answers a test writes byte for byte, for responses ``backends.Backend`` never
sends (a 101 nobody asked for, a Connection header naming Content-Length, a WebSocket peer that
stops reading). Listens on 127.0.0.1; one thread per connection; ``close()`` ends everything.

``answer(sock, rfile, request)`` is called for every request except health checks (``/health``,
answered 200 and closed); it returns whether to read another request on the connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pytest

from tests.support.backends import Request, read_body, read_request_head
from tests.support.tcp_server import ThreadedTcpServer

Answer = Callable[[socket.socket, BinaryIO, Request], bool]


class RawTarget(ThreadedTcpServer):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        super().__init__()

    def traffic(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def serve(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb", buffering=65536)
        try:
            while not self.stopped:
                req = read_request_head(rfile)
                if req is None:
                    return
                if req.path == "/health":
                    read_body(rfile, req)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    return
                with self.lock:
                    self.requests.append(req)
                if not self.answer(conn, rfile, req):
                    return
        except (OSError, ValueError, ConnectionError):
            return
        finally:
            try:
                rfile.close()
            except OSError:
                pass


@pytest.fixture
def raw_targets() -> Iterator[Callable[[Answer], RawTarget]]:
    """``raw_targets(answer)``: a started ``RawTarget``, closed when the test ends."""
    made: list[RawTarget] = []

    def make(answer: Answer) -> RawTarget:
        made.append(RawTarget(answer))
        return made[-1]

    yield make
    for target in made:
        target.close()
