"""HTTPS target groups: the proxy speaks TLS to their targets, and never plaintext.

A real ``ProxyRuntime`` in this process (on asyncio's loop and on uvloop, which the server
runs), an HTTP listener on loopback, and backends on loopback that record the first byte
of every connection they accept: 0x16 opens a TLS handshake record, anything else is
plaintext. Once more end to end: a real server configured through boto3. Network:
127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

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
from tests.support.backends import read_request_head
from tests.support.loops import LOOPS, run_on, until
from tests.support.server import PortsideProcess
from tests.support.tcp_server import ThreadedTcpServer
from tests.support.tls import self_signed, server_context

TLS_RECORD = b"\x16"  # a TLS handshake record's content type: the first byte a TLS client sends
HC = HealthCheck(protocol="HTTPS", path="/health", interval_s=1, timeout_s=1, healthy_threshold=2, unhealthy_threshold=2)


class RecordingBackend(ThreadedTcpServer):
    """A loopback server that records how each connection began and what arrived on it.

    With ``tls`` it serves HTTP/1.1 over TLS (keep-alive; ``/health`` answers 200 and closes;
    every other path answers ``<tls version> <path>``) and drops a connection that does not
    open with a TLS record. Without, it is a plaintext-only HTTP server: it answers any
    complete head with 200 and closes anything else.
    """

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.first_bytes: list[bytes] = []
        self.received: list[bytes] = []  # plaintext-only backend: everything each connection sent
        self.requests: list[tuple[str, str]] = []  # TLS backend: (tls version, path) of traffic
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return
            with self.lock:
                self.first_bytes.append(first)
            if self.tls is None:
                self._serve_plaintext(conn)
            elif first == TLS_RECORD:
                with self.tls.wrap_socket(conn, server_side=True) as tls:
                    self._serve_tls(tls)
        except (OSError, ValueError):
            return

    def _serve_plaintext(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data and not data.startswith(TLS_RECORD) and len(data) < 65536:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        with self.lock:
            self.received.append(data)
        if b"\r\n\r\n" in data:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")

    def _serve_tls(self, tls: ssl.SSLSocket) -> None:
        rfile = tls.makefile("rb")
        for _ in range(100_000):  # bounded: one connection serves at most this many requests
            request = read_request_head(rfile)
            if request is None:
                return
            if request.path == "/health":
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                return
            version = tls.version() or "?"
            with self.lock:
                self.requests.append((version, request.path))
            body = f"{version} {request.path}".encode()
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def made() -> Iterator[list[RecordingBackend]]:
    backends: list[RecordingBackend] = []
    yield backends
    for backend in backends:
        backend.close()


def _config(listen_port: int, backend: RecordingBackend) -> LbConfig:
    group = TargetGroup(
        "arn:tg/secure", "secure", "HTTPS", 443, "ip", HC, TargetGroupAttributes(),
        (Target(f"i-{backend.port}", backend.port, "127.0.0.1"),),
    )
    forward = Action("forward", target_groups=(WeightedTargetGroup(group.arn),))
    default = Rule("arn:rule/default", 50001, (), (forward,), is_default=True)
    listener = Listener("arn:listener/1", "arn:lb/1", "HTTP", listen_port, "127.0.0.1", (default,))
    return LbConfig((listener,), {group.arn: group})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, paths: list[str]) -> list[tuple[int, bytes]]:
    """GET each path over one keep-alive connection to the listener: (status, body) each."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        rfile = sock.makefile("rb")
        for path in paths:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: app.example.com\r\n\r\n".encode())
            status = int(rfile.readline(65537).split()[1])
            length = 0
            while (line := rfile.readline(65537)) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            out.append((status, rfile.read(length)))
    return out


def _run_proxy(backend: RecordingBackend, loop: str, scenario: Callable[[ProxyRuntime, int], Any]) -> Any:
    """Run ``scenario(runtime, listener port)`` against a fresh proxy forwarding everything to ``backend``."""

    async def main() -> Any:
        runtime = ProxyRuntime()
        try:
            port = _free_port()
            config = _config(port, backend)
            runtime.bind_listener(config.listeners[0])
            runtime.apply(config)
            return await scenario(runtime, port)
        finally:
            await runtime.close()

    return run_on(loop, main)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_requests_to_an_https_target_group_arrive_over_tls(tmp_path: Path, made: list[Any], loop: str) -> None:
    backend = RecordingBackend(server_context(*self_signed(tmp_path)))  # self-signed: not verified, as ALB does
    made.append(backend)

    async def scenario(runtime: ProxyRuntime, port: int) -> None:
        await until(lambda: runtime.target_health("arn:tg/secure", f"i-{backend.port}", backend.port).state == "healthy",
                    "the target healthy through HTTPS health checks")
        answers = await asyncio.to_thread(_get, port, [f"/echo/{i}" for i in range(5)])
        assert [status for status, _ in answers] == [200] * 5
        assert all(body.startswith(b"TLSv1.") for _, body in answers), answers
        assert [body.split()[1] for _, body in answers] == [f"/echo/{i}".encode() for i in range(5)]

    _run_proxy(backend, loop, scenario)
    assert backend.first_bytes and set(backend.first_bytes) == {TLS_RECORD}, backend.first_bytes
    assert [path for _, path in backend.requests] == [f"/echo/{i}" for i in range(5)]


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_plaintext_backend_in_an_https_group_gets_no_plaintext_request(made: list[Any], loop: str) -> None:
    backend = RecordingBackend(None)
    made.append(backend)
    key = f"i-{backend.port}"

    async def scenario(runtime: ProxyRuntime, port: int) -> None:
        # HTTPS health checks fail on it: unhealthy, and, as the only target, it gets traffic (fail open).
        await until(lambda: runtime.target_health("arn:tg/secure", key, backend.port).state == "unhealthy",
                    "the plaintext target unhealthy")
        answers = await asyncio.to_thread(_get, port, ["/secret?token=1"])
        assert answers[0][0] == 502  # the TLS handshake failed: a bad gateway, not a plaintext retry

    _run_proxy(backend, loop, scenario)
    assert len(backend.received) >= 3  # health checks and the request's attempt did connect
    assert all(data.startswith(TLS_RECORD) for data in backend.received), backend.received
    assert not any(b"HTTP/1.1" in data or b"/secret" in data for data in backend.received)


@pytest.mark.docker
def test_an_https_target_group_made_through_boto3_gets_tls(tmp_path: Path, made: list[Any], docker_client: Any) -> None:
    backend = RecordingBackend(server_context(*self_signed(tmp_path)))
    made.append(backend)
    server = PortsideProcess(tmp_path / "state", "--firewall", "off", "--min-health-check-interval", "1")
    server.start()
    try:
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        lb = elb.create_load_balancer(Name="tls-up", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name="tls-up", Protocol="HTTPS", Port=443, VpcId="v", TargetType="ip", HealthCheckProtocol="HTTPS",
            HealthCheckPath="/health", HealthCheckIntervalSeconds=2, HealthCheckTimeoutSeconds=1,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.1", "Port": backend.port}])
        port = _free_port()
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        elb.get_waiter("target_in_service").wait(TargetGroupArn=tg, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        answers = _get(port, ["/via-api"])
        assert answers[0][0] == 200 and answers[0][1].startswith(b"TLSv1."), answers
    finally:
        server.stop()
    assert set(backend.first_bytes) == {TLS_RECORD}, backend.first_bytes
    assert [path for _, path in backend.requests] == ["/via-api"]
