"""Limits that hold under abuse, through a real listener: each test abuses one limit over real
sockets and shows that a normal client is served meanwhile. Network: 127.0.0.1 only; every
send loop is bounded in bytes and in time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

import pytest

from portside.core.lb.model import Condition
from portside.proxy.runtime import ProxyRuntime
from tests.integration.test_proxy import (  # noqa: F401  (lb, backends: fixtures)
    Client,
    Lb,
    backends,
    eventually,
    fetch,
    forward,
    group,
    lb,
    rule,
    serving,
)
from tests.support.backends import Request, black_hole, ws_client_key
from tests.support.raw_target import Answer, raw_targets  # noqa: F401  (a fixture)

MIB = 1024 * 1024


@pytest.fixture
async def make_lb() -> AsyncIterator[Callable[..., Lb]]:
    made: list[ProxyRuntime] = []

    def make(**kw: Any) -> Lb:
        made.append(ProxyRuntime(**kw))
        return Lb(made[-1])

    yield make
    for rt in made:
        await rt.close()


def push(sock: socket.socket, total: int, seconds: float) -> int:
    """Send up to ``total`` bytes for at most ``seconds``; the number the peer took."""
    sock.settimeout(0.2)
    block = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + seconds
    while sent < total and time.monotonic() < deadline:
        try:
            sent += sock.send(block[: total - sent])
        except TimeoutError:
            continue
        except OSError:
            break
    return sent


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the peer closes ``sock`` (reading and dropping what it sends), or None."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - start
    return None


async def normal_client_served(lb: Lb, path: str = "/echo?normal") -> None:
    r = await fetch(lb.port, path=path)
    assert r.status == 200, r


# ---------------------------------------------------------------------------------------------


async def test_a_request_head_must_complete_within_its_deadline(make_lb: Any, backends: Any) -> None:
    lb = make_lb(request_head_timeout_s=2)
    b = backends("a")
    await serving(lb, [b])  # idle timeout 60 s: only the head deadline can end what follows

    def slowloris() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as sock:
            started = time.monotonic()
            head = b"GET /echo HTTP/1.1\r\nHost: app.example.com\r\n" + b"X-Slow: y\r\n" * 40
            answer = b""
            for byte in head[:40]:  # a byte every 0.2 s: never idle, never done
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                sock.settimeout(0.2)
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    continue
                break
            return answer, time.monotonic() - started

    task = asyncio.ensure_future(asyncio.to_thread(slowloris))
    await asyncio.sleep(0.5)
    await normal_client_served(lb)
    answer, took = await task
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert 1.5 < took < 4.5, took
    assert [r.target for r in b.traffic()] == ["/echo?normal"]


async def test_the_head_deadline_runs_only_while_the_proxy_reads(make_lb: Any, backends: Any) -> None:
    """Behind two pipelined requests the proxy stops reading: a head begun then is not late."""
    lb = make_lb(request_head_timeout_s=3)
    b = backends("a")
    await serving(lb, [b])

    def pipelined() -> list[int]:
        with Client(lb.port, timeout=10) as c:
            third = Client.build("GET", "/echo?third")
            c.send(Client.build("GET", "/slow?s=3") + Client.build("GET", "/echo?second") + third[:20])
            # The proxy stops reading after the second request and reads on once the first is
            # answered (at 3 s): the third's head then has its 3 s again (a tick passes meanwhile,
            # which would have answered 408 had the deadline counted from the head's first byte).
            time.sleep(4.5)
            c.send(third[20:])
            return [c.read_response().status for _ in range(3)]

    assert await asyncio.to_thread(pipelined) == [200, 200, 200]
    assert [r.target for r in b.traffic()] == ["/slow?s=3", "/echo?second", "/echo?third"]


async def test_reading_a_body_pauses_while_its_request_waits_for_a_target(lb: Lb, backends: Any) -> None:
    good, hole = backends("good"), backends("hole")
    lb.apply(
        [group("arn:tg/good", [good]), group("arn:tg/hole", [hole])],
        rules=[rule(1, [Condition("path-pattern", ("/normal*",))], forward("arn:tg/good"))],
        default=forward("arn:tg/hole"),
    )
    await lb.wait_state("arn:tg/good", [good])
    await lb.wait_state("arn:tg/hole", [hole])  # HC_ONCE: stays "healthy" after what follows
    hole.stop_listening()
    with black_hole(hole.port):
        await asyncio.sleep(0.1)

        def upload() -> int:
            with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as sock:
                sock.sendall(Client.build("POST", "/upload", [("Content-Length", str(128 * MIB))]))
                return push(sock, 128 * MIB, 3.0)

        task = asyncio.ensure_future(asyncio.to_thread(upload))
        await asyncio.sleep(1.0)
        await normal_client_served(lb, "/normal")
        sent = await task
        # Before: the proxy read all 128 MiB into memory in about a second. Now only socket
        # buffers (a few MiB) and 64 KiB in the proxy take bytes while the connect hangs.
        assert sent < 48 * MIB, sent / MIB


def websocket_target(stop: threading.Event, flood: bool, pushed: list[int]) -> Answer:
    """A WebSocket peer that accepts, then never reads (``flood``: and sends for 4 s, recording
    in ``pushed`` how many bytes were taken)."""

    def answer(sock: socket.socket, rfile: BinaryIO, req: Request) -> bool:
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        if flood:
            pushed.append(push(sock, 512 * MIB, 4.0))
        stop.wait(10)
        return False

    return answer


def open_websocket(port: int) -> socket.socket:
    key, _ = ws_client_key()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        Client.build(
            "GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                           ("Sec-WebSocket-Version", "13")],
        )
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, head
        head += byte
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def normal_and(tg: str) -> dict[str, Any]:
    return {
        "rules": [rule(1, [Condition("path-pattern", ("/normal*",))], forward("arn:tg/normal"))],
        "default": forward(tg),
    }


async def test_websocket_tunnels_have_backpressure_both_ways(lb: Lb, backends: Any, raw_targets: Any) -> None:
    normal = backends("normal")
    stop = threading.Event()
    pushed: list[int] = []
    try:
        slow_reader = raw_targets(websocket_target(stop, False, pushed))
        flooder = raw_targets(websocket_target(stop, True, pushed))
        lb.apply([group("arn:tg/normal", [normal]), group("arn:tg/slow", [slow_reader.port])], **normal_and("arn:tg/slow"))
        await lb.wait_state("arn:tg/normal", [normal])
        await lb.wait_state("arn:tg/slow", [slow_reader.port])

        # Client to target: the target reads nothing; the client can only fill socket buffers.
        def client_floods() -> int:
            with open_websocket(lb.port) as sock:
                return push(sock, 256 * MIB, 3.0)

        task = asyncio.ensure_future(asyncio.to_thread(client_floods))
        await asyncio.sleep(1.0)
        await normal_client_served(lb, "/normal")
        sent = await task
        assert sent < 64 * MIB, sent / MIB

        # Target to client: the client reads nothing; the target can only fill socket buffers.
        lb.apply([group("arn:tg/normal", [normal]), group("arn:tg/flood", [flooder.port])], **normal_and("arn:tg/flood"))
        await lb.wait_state("arn:tg/flood", [flooder.port])
        ws = await asyncio.to_thread(open_websocket, lb.port)
        try:
            await asyncio.sleep(1.0)
            await normal_client_served(lb, "/normal")
            await eventually(lambda: pushed, 6, "the flooding target to stop")
            assert pushed[0] < 64 * MIB, pushed[0] / MIB
        finally:
            ws.close()
    finally:
        stop.set()


async def test_an_idle_websocket_tunnel_is_closed_after_the_idle_timeout(lb: Lb, backends: Any) -> None:
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])], idle_timeout_s=2)
    await lb.wait_state("arn:tg/web", [b])
    ws = await asyncio.to_thread(open_websocket, lb.port)
    try:
        await normal_client_served(lb)
        waited = await asyncio.to_thread(wait_closed, ws, 6)
        assert waited is not None and 1.5 < waited < 4.5, waited
    finally:
        ws.close()
    await eventually(lambda: b.open_traffic_connections <= 1, 3, "the target side of the tunnel closed")
    await normal_client_served(lb)


async def test_a_connection_answered_before_its_body_ended_times_out(lb: Lb, backends: Any) -> None:
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])], idle_timeout_s=2)
    await lb.wait_state("arn:tg/web", [b])

    def stall() -> tuple[bytes, float | None]:
        with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as sock:
            # /reject answers 413 after 0.3 s without reading the body; the client then stops.
            sock.sendall(Client.build("POST", "/reject", [("Content-Length", str(MIB))]) + b"x" * 1000)
            sock.settimeout(5)
            answer = sock.recv(65536)
            return answer, wait_closed(sock, 8)

    task = asyncio.ensure_future(asyncio.to_thread(stall))
    await asyncio.sleep(0.5)
    await normal_client_served(lb)
    answer, waited = await task
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert waited is not None and waited < 4.5, waited


async def test_connection_limit_closes_idle_connections_first_then_refuses(make_lb: Any, backends: Any) -> None:
    lb = make_lb(max_client_connections=20)
    b = backends("a")
    await serving(lb, [b])
    idle = []
    busy = []
    try:
        for _ in range(20):  # idle keep-alive connections, each after one request
            c = await asyncio.to_thread(Client, lb.port)
            idle.append(c)
            assert (await asyncio.to_thread(c.request)).status == 200
        # A new client makes room by closing an idle one.
        await normal_client_served(lb)
        await eventually(lambda: len(lb.rt.listeners[lb.listener_arn].connections) <= 20, 2, "at most 20 connections")
        assert lb.rt.evicted_connections >= 1

        # Connections with a request in progress (a head begun, or a request at a target) are
        # never closed to make room: once every slot holds one, new connections are refused.
        for i in range(20):
            c = await asyncio.to_thread(Client, lb.port)
            busy.append(c)
            if i % 2:
                c.send(b"GET /echo HTTP/1.1\r\nHost: app.example.com\r\n")  # a head begun
            else:
                c.send(Client.build("GET", "/slow?s=3"))
        listener = lb.rt.listeners[lb.listener_arn]
        await eventually(lambda: sum(1 for c in listener.connections if not c.idle()) == 20, 3, "20 busy connections")
        assert all(await asyncio.to_thread(lambda: [c.wait_closed(0.3) is not None for c in idle]))
        refused = await asyncio.to_thread(Client, lb.port)
        try:
            assert await asyncio.to_thread(refused.wait_closed, 2) is not None
        finally:
            refused.close()
        assert lb.rt.refused_connections >= 1
        assert all(await asyncio.to_thread(lambda: [c.wait_closed(0.05) is None for c in busy]))
    finally:
        for c in idle + busy:
            c.close()
    await eventually(lambda: len(lb.rt.listeners[lb.listener_arn].connections) < 20, 3, "slots freed")
    await normal_client_served(lb)
