"""Health checks against hostile targets: nothing a target sends freezes its health.

A real ``ProxyRuntime`` in this process (on uvloop, as the server runs it; one case on
asyncio's loop too) probes a raw socket server on loopback whose behaviour the test switches:
a 64 KiB status line, garbage, a head that never ends, a close in the middle of the head.
Each makes the healthy target unhealthy with ``Target.FailedHealthChecks``, and the same
target is healthy again once the backend behaves: the checker's loop survived. A probe that
raises inside the checker itself (a path that cannot be encoded) counts as failed too, and a
health store that cannot save does not stop the checks.
Network: 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.control.store import Store
from portside.core.lb.model import (
    Action,
    HealthCheck,
    LbConfig,
    Listener,
    Rule,
    Target,
    TargetGroup,
    TargetGroupAttributes,
    WeightedTargetGroup,
)
from portside.proxy.runtime import ProxyRuntime
from tests.support.loops import run_on, until
from tests.support.tcp_server import ThreadedTcpServer

GROUP = "arn:tg/hostile"
HC = HealthCheck(path="/health", interval_s=1, timeout_s=1, healthy_threshold=2, unhealthy_threshold=2)
GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
MAX_SENT_BYTES = 4 << 20  # what one hostile connection sends at most
HOLD_S = 5.0  # how long a hostile connection stays open at most once it has said its piece


class HostileBackend(ThreadedTcpServer):
    """A raw TCP server on 127.0.0.1: answers every connection as ``mode`` says (switchable)."""

    def __init__(self) -> None:
        self.mode = "good"
        self.served: dict[str, int] = {}
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        mode = self.mode
        conn.settimeout(HOLD_S)
        try:
            conn.recv(65536)  # the probe's request
            with self.lock:
                self.served[mode] = self.served.get(mode, 0) + 1
            if mode == "good":
                conn.sendall(GOOD)
            elif mode == "long-status-line":
                conn.sendall(b"HTTP/1.1 200 " + b"A" * 65536 + b"\r\n\r\n")
                self._hold(conn)
            elif mode == "garbage":
                conn.sendall(bytes(range(256)) * 4)
                self._hold(conn)
            elif mode == "endless-head":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                line = b"X-Filler: " + b"f" * 54 + b"\r\n"
                for _ in range(MAX_SENT_BYTES // len(line)):  # until the checker hangs up
                    conn.sendall(line)
            elif mode == "close-mid-head":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        except OSError:
            pass  # the checker hung up: what it should do

    def _hold(self, conn: socket.socket) -> None:
        """Keep the connection open (so a decision cannot come from the close) until the checker hangs up."""
        while not self.stopped and conn.recv(65536):
            pass


@pytest.fixture
def backend() -> Iterator[HostileBackend]:
    server = HostileBackend()
    yield server
    server.close()


def _config(backend: HostileBackend, check: HealthCheck) -> LbConfig:
    group = TargetGroup(
        GROUP, "hostile", "HTTP", 80, "ip", check, TargetGroupAttributes(),
        (Target(f"i-{backend.port}", backend.port, "127.0.0.1"),),
    )
    forward = Action("forward", target_groups=(WeightedTargetGroup(GROUP),))
    listener = Listener(  # the group must be in use by a rule to be probed; the listener is never bound
        "arn:listener/1", "arn:lb/1", "HTTP", 1, "127.0.0.1", (Rule("arn:rule/default", 50001, (), (forward,), True),)
    )
    return LbConfig((listener,), {GROUP: group})


def _health(runtime: ProxyRuntime, backend: HostileBackend) -> tuple[str, str | None]:
    view = runtime.target_health(GROUP, f"i-{backend.port}", backend.port)
    return view.state, view.reason


@pytest.mark.parametrize(
    ("mode", "loop"),
    [
        ("long-status-line", "uvloop"),
        ("long-status-line", "asyncio"),
        ("garbage", "uvloop"),
        ("endless-head", "uvloop"),
        ("close-mid-head", "uvloop"),
    ],
)
def test_a_hostile_answer_fails_the_check_and_a_good_one_heals_it(backend: HostileBackend, mode: str, loop: str) -> None:
    async def main() -> None:
        runtime = ProxyRuntime()
        try:
            runtime.apply(_config(backend, HC))
            await until(lambda: _health(runtime, backend)[0] == "healthy", "healthy while the backend behaves")
            backend.mode = mode
            await until(lambda: _health(runtime, backend) == ("unhealthy", "Target.FailedHealthChecks"),
                        f"unhealthy (Target.FailedHealthChecks) once it answers with {mode}")
            backend.mode = "good"
            await until(lambda: _health(runtime, backend)[0] == "healthy", "healthy again once the backend behaves")
        finally:
            await runtime.close()

    run_on(loop, main)
    assert backend.served.get(mode, 0) >= 2  # the unhealthy threshold's worth of hostile answers was read


def test_an_error_inside_a_probe_counts_as_a_failure_and_the_loop_goes_on(
    backend: HostileBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="portside.proxy.health")

    async def main() -> None:
        runtime = ProxyRuntime()
        try:
            runtime.apply(_config(backend, HealthCheck(**{**HC.__dict__, "path": "/caf\u00e9"})))  # cannot be sent
            await until(lambda: _health(runtime, backend) == ("unhealthy", "Target.FailedHealthChecks"),
                        "unhealthy: the probe raised before sending")
            runtime.apply(_config(backend, HC))
            await until(lambda: _health(runtime, backend)[0] == "healthy", "healthy once the path can be sent")
        finally:
            await runtime.close()

    run_on("uvloop", main)
    assert backend.served.get("good", 0) >= 2
    tracebacks = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(tracebacks) == 1 and tracebacks[0].exc_info is not None  # logged once, not at every probe
    [unhealthy] = [r.getMessage() for r in caplog.records if " is unhealthy " in r.getMessage()]
    assert "Target.FailedHealthChecks" in unhealthy and "UnicodeEncodeError" in unhealthy


def test_a_store_that_cannot_save_does_not_stop_the_checks(backend: HostileBackend, tmp_path: Path) -> None:
    store = Store(tmp_path / "portside.db")

    async def main() -> None:
        runtime = ProxyRuntime(store)
        store.close()  # every save from now on raises sqlite3.ProgrammingError
        try:
            runtime.apply(_config(backend, HC))
            await until(lambda: _health(runtime, backend)[0] == "healthy", "healthy although the save failed")
            backend.mode = "close-mid-head"
            await until(lambda: _health(runtime, backend)[0] == "unhealthy", "unhealthy: the checks went on")
            backend.mode = "good"
            await until(lambda: _health(runtime, backend)[0] == "healthy", "healthy again")
        finally:
            await runtime.close()

    run_on("uvloop", main)
