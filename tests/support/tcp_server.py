"""A threaded TCP server on 127.0.0.1 for backends whose bytes a test writes itself.

Subclasses implement ``serve(conn)``, called in a thread of its own for every accepted
connection (the connection is closed when it returns). ``close()`` stops accepting and shuts
down every connection still open, so no thread outlives its test by more than a read.
"""

from __future__ import annotations

import socket
import threading


class ThreadedTcpServer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stopped.set()
        for sock in [self.sock, *self._connections()]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sock.close()

    def _connections(self) -> list[socket.socket]:
        with self.lock:
            return list(self._open)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        finally:
            with self.lock:
                self._open.discard(conn)
            conn.close()
