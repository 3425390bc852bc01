"""The layer-7 data plane through real sockets: a real ``ProxyRuntime`` in this process,
real backends (``tests.support.backends``) and real clients (raw sockets in threads).

Every test builds ``LbConfig`` values directly (no control plane). Network: 127.0.0.1 only;
every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from portside.core.lb.model import (
    Action,
    Certificate,
    Condition,
    HealthCheck,
    LbConfig,
    Listener,
    Rule,
    Target,
    TargetGroup,
    TargetGroupAttributes,
    WeightedTargetGroup,
)
from portside.core.lb.stickiness import encode_cookie
from portside.control.store import Store
from portside.proxy.runtime import ProxyRuntime
from tests.support.backends import (
    BLOCK,
    Backend,
    black_hole,
    generate,
    iter_chunked,
    read_headers,
    ws_client_key,
    ws_frame,
    ws_read_frame,
)
from tests.support.tls import self_signed

# A check that runs at once and then rarely: the target stays as its first probe left it.
HC_ONCE = HealthCheck(path="/health", interval_s=60, timeout_s=2, healthy_threshold=2, unhealthy_threshold=2)
# A check every second, two in a row to change state.
HC_FAST = HealthCheck(path="/health", interval_s=1, timeout_s=1, healthy_threshold=2, unhealthy_threshold=2)

TEMPLATE = "<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n<center><h1>{t}</h1></center>\r\n</body>\r\n</html>\r\n"
TRACE_ROOT = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


# ---------------------------------------------------------------------------------------------
# A raw HTTP/1.1 client (blocking; tests call it through asyncio.to_thread)


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False
    interim: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def backend(self) -> str | None:
        return self.header("x-backend")


class Client:
    """One client connection to a listener."""

    def __init__(
        self,
        port: int,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=65536)

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    @staticmethod
    def build(
        method: str = "GET",
        path: str = "/echo",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        host: str = "app.example.com",
        version: str = "HTTP/1.1",
    ) -> bytes:
        lines = [f"{method} {path} {version}", f"Host: {host}"]
        names = set()
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
            names.add(name.lower())
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def request(
        self,
        method: str = "GET",
        path: str = "/echo",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        host: str = "app.example.com",
        version: str = "HTTP/1.1",
    ) -> Response:
        self.send(self.build(method, path, headers, body, host, version))
        return self.read_response(method)

    def read_response(self, method: str = "GET") -> Response:
        interim = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("connection closed before a response")
            _version, status_text, reason = (line.decode("latin-1").rstrip("\r\n").split(" ", 2) + [""])[:3]
            status = int(status_text)
            headers = read_headers(self.rfile)
            if 100 <= status < 200 and status != 101:
                interim.append((status, headers))
                continue
            break
        resp = Response(status, reason, headers, interim=interim)
        if method == "HEAD" or status in (204, 304) or status == 101:
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            resp.chunked = True
            resp.body = b"".join(iter_chunked(self.rfile))
        elif resp.header("content-length") is not None:
            resp.body = self.rfile.read(int(resp.header("content-length") or 0))
        else:
            resp.body = self.rfile.read()
        return resp

    def wait_closed(self, timeout: float) -> float | None:
        """Seconds until the proxy closes this connection, or None if it stays open."""
        start = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except TimeoutError:
            return None
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        assert data == b"", data
        return time.monotonic() - start


def fetch_sync(
    port: int,
    method: str = "GET",
    path: str = "/echo",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    host: str = "app.example.com",
) -> Response:
    with Client(port) as c:
        return c.request(method, path, headers, body, host)


async def fetch(
    port: int,
    method: str = "GET",
    path: str = "/echo",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    host: str = "app.example.com",
) -> Response:
    return await asyncio.to_thread(fetch_sync, port, method, path, headers, body, host)


def many_sync(
    port: int, count: int, path: str = "/echo", headers: list[tuple[str, str]] | None = None
) -> list[Response]:
    """``count`` requests over one keep-alive connection."""
    with Client(port) as c:
        return [c.request("GET", path, headers) for _ in range(count)]


async def many(
    port: int, count: int, path: str = "/echo", headers: list[tuple[str, str]] | None = None
) -> list[Response]:
    return await asyncio.to_thread(many_sync, port, count, path, headers)


async def eventually(check: Callable[[], Any], timeout: float = 3.0, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------------------------------
# Building configurations


def target(backend: Backend | int, draining: bool = False, deadline: float | None = None) -> Target:
    port = backend.port if isinstance(backend, Backend) else backend
    return Target(f"i-{port}", port, "127.0.0.1", draining=draining, drain_deadline=deadline)


def group(
    arn: str, targets: list[Backend | int | Target], hc: HealthCheck = HC_ONCE, **attrs: Any
) -> TargetGroup:
    specs = tuple(t if isinstance(t, Target) else target(t) for t in targets)
    return TargetGroup(
        arn, arn.rsplit(":", 1)[-1], "HTTP", 80, "ip", hc, TargetGroupAttributes(**attrs), specs
    )


def forward(*groups: str | tuple[str, int]) -> Action:
    weighted = tuple(
        WeightedTargetGroup(g) if isinstance(g, str) else WeightedTargetGroup(*g) for g in groups
    )
    return Action("forward", target_groups=weighted)


def fixed(status: int, body: str = "", content_type: str = "text/plain") -> Action:
    return Action("fixed-response", fixed_status=status, fixed_body=body, fixed_content_type=content_type)


def rule(priority: int, conditions: list[Condition], action: Action) -> Rule:
    return Rule(f"arn:rule/{priority}", priority, tuple(conditions), (action,))


class Lb:
    """A ``ProxyRuntime`` with one listener on a free loopback port."""

    def __init__(self, rt: ProxyRuntime) -> None:
        self.rt = rt
        self.port = free_port()
        self.listener_arn = "arn:listener/1"
        self.groups: dict[str, TargetGroup] = {}
        self.drained: list[tuple[str, str, int, float]] = []
        rt.set_drained_callback(
            lambda arn, tid, port: self.drained.append((arn, tid, port, time.monotonic()))
        )

    def listener(
        self,
        rules: list[Rule],
        default: Action,
        protocol: str = "HTTP",
        certificates: tuple[Certificate, ...] = (),
        idle_timeout_s: int = 60,
    ) -> Listener:
        all_rules = (*rules, Rule("arn:rule/default", 50001, (), (default,), is_default=True))
        return Listener(
            self.listener_arn,
            "arn:lb/1",
            protocol,
            self.port,
            "127.0.0.1",
            all_rules,
            certificates,
            idle_timeout_s,
        )

    def apply(
        self,
        groups: list[TargetGroup],
        rules: list[Rule] | None = None,
        default: Action | None = None,
        **listener_kw: Any,
    ) -> None:
        self.groups = {g.arn: g for g in groups}
        if default is None:
            default = forward(groups[0].arn) if groups else fixed(404, "none")
        listener = self.listener(rules or [], default, **listener_kw)
        if self.listener_arn not in self.rt.listeners:
            self.rt.bind_listener(listener)
        self.rt.apply(LbConfig((listener,), dict(self.groups)))

    def health(self, tg_arn: str, backend: Backend | int) -> Any:
        port = backend.port if isinstance(backend, Backend) else backend
        return self.rt.target_health(tg_arn, f"i-{port}", port)

    async def wait_state(
        self, tg_arn: str, backends: list[Backend | int], state: str = "healthy", timeout: float = 3.0
    ) -> None:
        await eventually(
            lambda: all(self.health(tg_arn, b).state == state for b in backends), timeout, f"targets {state}"
        )


@pytest.fixture
def backends() -> Iterator[Callable[..., Backend]]:
    made: list[Backend] = []

    def make(name: str = "b", **kw: Any) -> Backend:
        backend = Backend(name=name, **kw)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
async def lb() -> AsyncIterator[Lb]:
    rt = ProxyRuntime()
    yield Lb(rt)
    await rt.close()


async def serving(
    lb: Lb, backends: list[Backend], hc: HealthCheck = HC_ONCE, arn: str = "arn:tg/web", **kw: Any
) -> str:
    """Forward everything to one target group of ``backends`` and wait until they are healthy."""
    lb.apply([group(arn, backends, hc, **kw)])
    await lb.wait_state(arn, backends)
    return arn


# ---------------------------------------------------------------------------------------------
# 1. keep-alive, pooling, pipelining


async def test_keep_alive_to_clients_and_pooled_connections_to_targets(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])

    def run() -> tuple[list[Response], int]:
        with Client(lb.port) as c:
            first_sock = c.sock
            out = [c.request("GET", f"/echo?i={i}") for i in range(60)]
            out += [c.request("POST", "/echo", body=b"x" * i) for i in range(1, 41)]
            assert c.sock is first_sock
            return out, c.wait_closed(0.2) is None

    responses, still_open = await asyncio.to_thread(run)
    assert [r.status for r in responses] == [200] * 100
    assert [r.body for r in responses[60:]] == [b"x" * i for i in range(1, 41)]
    assert all(r.header("connection") != "close" for r in responses)
    assert still_open
    assert len(b.traffic()) == 100
    assert b.connections <= 2, b.connections
    assert len({r.header("x-conn") for r in responses}) <= 2

    # A second client connection reuses the pooled target connection as well.
    more = await many(lb.port, 10)
    assert all(r.status == 200 for r in more)
    assert b.connections <= 2


async def test_pipelined_requests_are_answered_in_order(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])

    def run() -> list[Response]:
        with Client(lb.port) as c:
            data = Client.build("GET", "/slow?s=0.3")
            for i in range(8):
                data += Client.build("POST", f"/echo?i={i}", body=b"body-%d" % i)
            data += Client.build("HEAD", "/head")
            data += Client.build("GET", "/echo?last")
            c.send(data)
            out = [c.read_response()]
            out += [c.read_response() for _ in range(8)]
            out.append(c.read_response("HEAD"))
            out.append(c.read_response())
            return out

    out = await asyncio.to_thread(run)
    assert [r.status for r in out] == [200] * 11
    assert [r.body for r in out[1:9]] == [b"body-%d" % i for i in range(8)]
    assert out[9].header("content-length") == "100" and out[9].body == b""
    assert [r.target for r in b.traffic()][-1] == "/echo?last"
    assert [r.target for r in b.traffic()][:2] == ["/slow?s=0.3", "/echo?i=0"]


# ---------------------------------------------------------------------------------------------
# 2. streaming bodies


async def test_streaming_uploads_and_downloads(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    size = 5 * 1024 * 1024 + 123
    expected_crc = 0
    for block in generate(size):
        expected_crc = zlib.crc32(block, expected_crc)

    def run() -> None:
        with Client(lb.port) as c:
            # content-length upload, sent in pieces
            c.send(Client.build("POST", "/upload", [("Content-Length", str(size))]))
            for block in generate(size):
                c.send(block)
            r = c.read_response()
            assert r.status == 200 and r.body == b"%d %08x" % (size, expected_crc)
            # chunked upload with odd chunk sizes
            c.send(Client.build("POST", "/upload", [("Transfer-Encoding", "chunked")]))
            for block in generate(size):
                for piece in (block[:1000], block[1000:]):
                    if piece:
                        c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            c.send(b"0\r\n\r\n")
            r = c.read_response()
            assert r.status == 200 and r.body == b"%d %08x" % (size, expected_crc)
            # downloads: content-length, then chunked
            r = c.request("GET", f"/download?n={size}")
            assert r.status == 200 and not r.chunked and len(r.body) == size
            assert zlib.crc32(r.body) == expected_crc
            r = c.request("GET", f"/download?n={size}&chunked=1")
            assert r.status == 200 and r.chunked and zlib.crc32(r.body) == expected_crc
            # and the connection is still good
            assert c.request("GET", "/echo").status == 200

    await asyncio.to_thread(run)
    assert b.connections == 1


async def test_slow_upload_is_not_an_idle_target(lb: Lb, backends: Any) -> None:
    """Bytes still flowing to the target keep the exchange alive past the idle timeout."""
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])], idle_timeout_s=1)
    await lb.wait_state("arn:tg/web", [b])

    def run() -> Response:
        with Client(lb.port) as c:
            c.send(Client.build("POST", "/upload", [("Transfer-Encoding", "chunked")]))
            for _ in range(12):
                c.send(b"4\r\ndata\r\n")
                time.sleep(0.25)
            c.send(b"0\r\n\r\n")
            return c.read_response()

    r = await asyncio.to_thread(run)
    assert r.status == 200 and r.body == b"48 %08x" % zlib.crc32(b"data" * 12)


async def test_early_response_during_a_stalled_upload(lb: Lb, backends: Any) -> None:
    """The target answers before reading the body (the upload is paused by backpressure then):
    the client gets the answer, can finish sending, and the connection stays usable."""
    b = backends("a")
    await serving(lb, [b])
    size = 32 * 1024 * 1024

    def run() -> tuple[Response, bool, Response | None]:
        with Client(lb.port, timeout=10) as c:
            sent = threading.Event()

            def upload() -> None:
                try:
                    c.send(Client.build("POST", "/reject", [("Content-Length", str(size))]))
                    for block in generate(size):
                        c.send(block)
                    sent.set()
                except OSError:
                    pass

            sender = threading.Thread(target=upload, daemon=True)
            sender.start()
            first = c.read_response("POST")
            sender.join(8)
            if not sent.is_set():
                return first, False, None
            try:
                return first, True, c.request("GET", "/echo")
            except (ConnectionError, OSError):
                return first, True, None  # closing the connection is fine too; hanging is not

    first, finished, after = await asyncio.to_thread(run)
    assert first.status == 413 and first.body == b"too big!"
    assert finished, "the rest of the upload was never read"
    assert after is None or after.status == 200


class RssWatch:
    """Samples this process's RSS while a transfer runs."""

    def __init__(self) -> None:
        self.before = rss_bytes()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(2)
        self.peak = max(self.peak, rss_bytes())
        return self.peak - self.before


GIB = 1 << 30
BIG_BLOCK = BLOCK * 16  # 1 MiB


async def test_one_gib_upload_with_bounded_memory(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    crc = 0
    for _ in range(GIB // len(BIG_BLOCK)):
        crc = zlib.crc32(BIG_BLOCK, crc)

    def run() -> Response:
        with Client(lb.port, timeout=60) as c:
            c.send(Client.build("POST", "/upload", [("Content-Length", str(GIB))]))
            view = memoryview(BIG_BLOCK)
            deadline = time.monotonic() + 60
            for _ in range(GIB // len(BIG_BLOCK)):
                c.sock.sendall(view)
                assert time.monotonic() < deadline, "upload too slow"
            return c.read_response()

    watch = RssWatch()
    started = time.monotonic()
    r = await asyncio.wait_for(asyncio.to_thread(run), 90)
    grown = watch.stop()
    assert r.status == 200 and r.body == b"%d %08x" % (GIB, crc)
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert time.monotonic() - started < 60


async def test_one_gib_download_with_bounded_memory(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])

    def run() -> int:
        with Client(lb.port, timeout=60) as c:
            c.send(Client.build("GET", f"/download?n={GIB}&chunked=1"))
            line = c.rfile.readline()
            assert line.startswith(b"HTTP/1.1 200"), line
            headers = read_headers(c.rfile)
            assert ("Transfer-Encoding", "chunked") in headers
            total = 0
            deadline = time.monotonic() + 60
            for chunk in iter_chunked(c.rfile):
                total += len(chunk)
                if total % (64 << 20) < len(chunk):
                    assert time.monotonic() < deadline, "download too slow"
            return total

    watch = RssWatch()
    started = time.monotonic()
    total = await asyncio.wait_for(asyncio.to_thread(run), 90)
    grown = watch.stop()
    assert total == GIB
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------------------------------------
# 3. headers


async def test_hop_by_hop_and_forwarded_headers(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    r = await fetch(
        lb.port,
        headers=[
            ("Connection", "keep-alive, X-Hop-A, x-hop-b"),
            ("X-Hop-A", "1"),
            ("X-Hop-B", "2"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic Zm9v"),
            ("X-Forwarded-For", "203.0.113.9, 198.51.100.7"),
            ("X-Forwarded-Proto", "ftp"),
            ("X-Forwarded-Port", "1"),
            (
                "X-Amzn-Trace-Id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-00000000-000000000000000000000000;Foo=bar",
            ),
            ("X-Keep", "me"),
        ],
    )
    assert r.status == 200
    seen = b.traffic()[-1]
    names = seen.header_names()
    for hop in ("x-hop-a", "x-hop-b", "keep-alive", "te", "proxy-authorization", "connection"):
        assert hop not in names, hop
    assert seen.header("x-keep") == "me"
    assert seen.header("x-forwarded-for") == "203.0.113.9, 198.51.100.7, 127.0.0.1"
    assert seen.header("x-forwarded-proto") == "http"
    assert seen.header("x-forwarded-port") == str(lb.port)
    assert [k.lower() for k, _ in seen.headers].count("x-forwarded-proto") == 1
    trace = seen.header("x-amzn-trace-id") or ""
    fields = dict(p.split("=", 1) for p in trace.split(";"))
    assert fields["Root"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert fields["Foo"] == "bar"
    assert TRACE_ROOT.match(fields["Self"]) and fields["Self"] != "1-00000000-000000000000000000000000"
    assert trace.count("Self=") == 1

    # No incoming X-Forwarded-For / trace id: created.
    r = await fetch(lb.port)
    seen = b.traffic()[-1]
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    root = (seen.header("x-amzn-trace-id") or "").removeprefix("Root=")
    assert TRACE_ROOT.match(root), seen.header("x-amzn-trace-id")
    assert abs(int(root[2:10], 16) - time.time()) < 5

    # Response side: hop-by-hop fields, and fields named in Connection, are not relayed.
    r = await fetch(lb.port, path="/hop")
    assert r.status == 200 and r.body == b"ok"
    got = {k.lower() for k, _ in r.headers}
    for hop in ("x-private", "keep-alive", "proxy-authenticate", "trailer", "upgrade"):
        assert hop not in got, hop
    assert r.header("x-public") == "yes"
    # Fields with a meaning in requests are only data in a response.
    assert r.header("x-forwarded-for") == "10.9.9.9" and r.header("x-amzn-trace-id") == "Root=mine"

    # Field names are case-insensitive whatever spelling a client uses, request after request.
    for xff, connection, hop in (
        ("x-forwarded-for", "connection", "x-hop"),
        ("X-FORWARDED-FOR", "CONNECTION", "X-HOP"),
        ("X-Forwarded-For", "cOnNeCtIoN", "X-Hop"),
    ):
        await fetch(lb.port, headers=[(xff, "192.0.2.1"), (connection, hop.swapcase()), (hop, "x")])
        seen = b.traffic()[-1]
        assert seen.header("x-forwarded-for") == "192.0.2.1, 127.0.0.1", xff
        assert "x-hop" not in seen.header_names() and "connection" not in seen.header_names(), connection


async def test_more_than_30_forwarded_addresses_get_463(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    thirty = ", ".join(f"10.0.0.{i}" for i in range(30))
    r = await fetch(lb.port, headers=[("X-Forwarded-For", thirty)])
    assert r.status == 200
    assert b.traffic()[-1].header("x-forwarded-for") == thirty + ", 127.0.0.1"
    r = await fetch(lb.port, headers=[("X-Forwarded-For", thirty + ", 10.0.1.1")])
    assert r.status == 463
    assert len(b.traffic()) == 1
    # repeated X-Forwarded-For fields are one list (RFC 9110 §5.3)
    r = await fetch(lb.port, headers=[("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-For", "192.0.2.2")])
    assert r.status == 200
    assert b.traffic()[-1].header("x-forwarded-for") == "192.0.2.1, 192.0.2.2, 127.0.0.1"
    r = await fetch(lb.port, headers=[("X-Forwarded-For", thirty), ("X-Forwarded-For", "10.0.1.1")])
    assert r.status == 463


# ---------------------------------------------------------------------------------------------
# 4. WebSocket


async def test_websocket_tunnel_survives_apply(lb: Lb, backends: Any) -> None:
    a, other = backends("a"), backends("other")
    lb.apply([group("arn:tg/a", [a]), group("arn:tg/other", [other])])
    await lb.wait_state("arn:tg/a", [a])
    assert lb.health("arn:tg/other", other).state == "unused"  # no rule forwards to it yet
    assert lb.health("arn:tg/other", other).reason == "Target.NotInUse"
    key, accept = ws_client_key()
    client = await asyncio.to_thread(Client, lb.port)
    try:

        def handshake() -> Response:
            client.send(
                Client.build(
                    "GET",
                    "/ws",
                    [
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Key", key),
                        ("Sec-WebSocket-Version", "13"),
                    ],
                )
            )
            return client.read_response()

        r = await asyncio.to_thread(handshake)
        assert r.status == 101
        assert r.header("sec-websocket-accept") == accept
        assert (r.header("upgrade") or "").lower() == "websocket"

        def echo(payload: bytes) -> tuple[int, bytes] | None:
            client.send(ws_frame(1, payload, mask=True))
            return ws_read_frame(client.rfile)

        assert await asyncio.to_thread(echo, b"hello") == (1, b"hello")
        big = bytes(range(256)) * 300
        assert await asyncio.to_thread(echo, big) == (1, big)

        # Everything now goes elsewhere; the tunnel is not affected.
        lb.apply(
            [group("arn:tg/a", [a]), group("arn:tg/other", [other])],
            rules=[rule(1, [Condition("path-pattern", ("/*",))], forward("arn:tg/other"))],
            default=fixed(404),
        )
        await lb.wait_state("arn:tg/other", [other])
        r2 = await fetch(lb.port)
        assert r2.backend == "other"
        await asyncio.sleep(1.2)  # a housekeeping tick passes
        assert await asyncio.to_thread(echo, b"after apply") == (1, b"after apply")
        assert await asyncio.to_thread(echo, b"x" * 70000) == (1, b"x" * 70000)

        def close() -> tuple[int, bytes] | None:
            client.send(ws_frame(8, b"\x03\xe8", mask=True))
            return ws_read_frame(client.rfile)

        assert await asyncio.to_thread(close) == (8, b"\x03\xe8")
        assert await asyncio.to_thread(client.wait_closed, 2) is not None
    finally:
        client.close()
    assert a.connections == 1


async def test_websocket_to_a_draining_target_is_cut_at_the_deadline(lb: Lb, backends: Any) -> None:
    a = backends("a")
    arn = await serving(lb, [a])
    key, _ = ws_client_key()

    def open_ws() -> Client:
        c = Client(lb.port)
        c.send(
            Client.build(
                "GET",
                "/ws",
                [
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", key),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
        )
        assert c.read_response().status == 101
        return c

    client = await asyncio.to_thread(open_ws)
    try:
        lb.apply([group(arn, [target(a, draining=True, deadline=time.time() + 1.5)])])
        started = time.monotonic()

        def echo(payload: bytes) -> tuple[int, bytes] | None:
            client.send(ws_frame(1, payload, mask=True))
            return ws_read_frame(client.rfile)

        assert await asyncio.to_thread(echo, b"still here") == (1, b"still here")
        await asyncio.sleep(0.2)
        assert not lb.drained  # the tunnel is still in flight
        waited = await asyncio.to_thread(client.wait_closed, 4)
        assert waited is not None and 1.0 < time.monotonic() - started < 3.5
        await eventually(lambda: lb.drained, 1, "drained callback")
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# 5. TLS termination with SNI


def make_cert(tmp: Path, name: str) -> tuple[Certificate, bytes]:
    """A self-signed certificate for ``name`` (files in ``tmp``) and its DER bytes."""
    cert_path, key_path = self_signed(tmp, name)
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    return Certificate(f"arn:cert/{name}", str(cert_path), str(key_path)), der


async def test_https_listener_serves_a_certificate_per_sni_name(
    lb: Lb, backends: Any, tmp_path: Path
) -> None:
    pytest.importorskip("cryptography")
    b = backends("a")
    cert_a, der_a = make_cert(tmp_path, "alpha.example.test")
    cert_b, der_b = make_cert(tmp_path, "beta.example.test")
    lb.apply([group("arn:tg/web", [b])], protocol="HTTPS", certificates=(cert_a, cert_b))
    await lb.wait_state("arn:tg/web", [b])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def visit(sni: str | None) -> tuple[bytes, Response]:
        with Client(lb.port, tls=context, server_hostname=sni) as c:
            der = c.sock.getpeercert(binary_form=True)
            return der, c.request("GET", "/echo", host=sni or "x.example.test")

    der, r = await asyncio.to_thread(visit, "alpha.example.test")
    assert der == der_a and r.status == 200
    der, r = await asyncio.to_thread(visit, "beta.example.test")
    assert der == der_b and r.status == 200
    der, r = await asyncio.to_thread(visit, "other.example.test")
    assert der == der_a  # the default certificate
    seen = b.traffic()[-1]
    assert seen.header("x-forwarded-proto") == "https"
    assert seen.header("x-forwarded-port") == str(lb.port)


# ---------------------------------------------------------------------------------------------
# 6. idle timeout


async def test_idle_client_connection_is_closed_after_the_idle_timeout(lb: Lb, backends: Any) -> None:
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])], idle_timeout_s=2)
    await lb.wait_state("arn:tg/web", [b])

    def run() -> float | None:
        with Client(lb.port) as c:
            assert c.request().status == 200
            return c.wait_closed(6)

    waited = await asyncio.to_thread(run)
    assert waited is not None and 1.5 < waited < 3.5, waited


# ---------------------------------------------------------------------------------------------
# 7. errors made by the load balancer


def assert_error_page(r: Response, status: int, title: str) -> None:
    assert r.status == status
    assert r.reason == title.split(" ", 1)[1]
    assert r.header("content-type") == "text/html"
    assert r.body == TEMPLATE.format(t=title).encode()
    assert int(r.header("content-length") or -1) == len(r.body)


async def test_503_when_no_target_can_be_chosen(lb: Lb, backends: Any) -> None:
    assert len(TEMPLATE.format(t="503 Service Temporarily Unavailable")) == 162
    assert len(TEMPLATE.format(t="502 Bad Gateway")) == 122
    # no targets at all
    lb.apply([group("arn:tg/empty", [])])
    assert_error_page(await fetch(lb.port), 503, "503 Service Temporarily Unavailable")

    # only an initial target (its first check is still running)
    slow_check = backends("slow-check", health_delay_s=4)
    hc = HealthCheck(path="/health", interval_s=30, timeout_s=3, healthy_threshold=2, unhealthy_threshold=2)
    lb.apply([group("arn:tg/web", [slow_check], hc)])
    await eventually(lambda: slow_check.health_checks >= 1)
    assert lb.health("arn:tg/web", slow_check).state == "initial"
    assert_error_page(await fetch(lb.port), 503, "503 Service Temporarily Unavailable")

    # only a draining target
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])])
    await lb.wait_state("arn:tg/web", [b])
    assert (await fetch(lb.port)).status == 200
    lb.apply([group("arn:tg/web", [target(b, draining=True, deadline=time.time() + 30)])])
    assert lb.health("arn:tg/web", b).state == "draining"
    r = await fetch(lb.port)
    assert_error_page(r, 503, "503 Service Temporarily Unavailable")
    assert len(b.traffic()) == 1
    assert lb.rt.elb_errors.get(503) == 3


async def test_502_on_refused_connection_and_invalid_response(lb: Lb, backends: Any) -> None:
    dead_port = free_port()
    lb.apply([group("arn:tg/dead", [dead_port])])
    await lb.wait_state("arn:tg/dead", [dead_port], "unhealthy")  # fails open to it
    assert_error_page(await fetch(lb.port), 502, "502 Bad Gateway")

    b = backends("a")
    await serving(lb, [b])

    def run() -> list[Response]:
        with Client(lb.port) as c:
            return [
                c.request("GET", "/invalid"),
                c.request("GET", "/echo"),
                c.request("GET", "/hangup"),
                c.request("GET", "/echo"),
            ]

    invalid, ok, hangup, ok2 = await asyncio.to_thread(run)
    assert_error_page(invalid, 502, "502 Bad Gateway")
    assert ok.status == 200
    assert_error_page(hangup, 502, "502 Bad Gateway")
    assert ok2.status == 200


async def test_504_when_the_target_does_not_answer_within_the_idle_timeout(lb: Lb, backends: Any) -> None:
    b = backends("a")
    lb.apply([group("arn:tg/web", [b])], idle_timeout_s=1)
    await lb.wait_state("arn:tg/web", [b])

    def run() -> tuple[Response, float, Response]:
        with Client(lb.port) as c:
            start = time.monotonic()
            r = c.request("GET", "/silent")
            took = time.monotonic() - start
            return r, took, c.request("GET", "/echo")

    r, took, after = await asyncio.to_thread(run)
    assert_error_page(r, 504, "504 Gateway Time-out")
    assert 0.9 < took < 3.0, took
    assert after.status == 200


# ---------------------------------------------------------------------------------------------
# 8. fail-open


async def test_fail_open_when_every_target_is_unhealthy(lb: Lb, backends: Any) -> None:
    sick = [backends(f"s{i}", health_status=500) for i in range(2)]
    lb.apply([group("arn:tg/web", sick)])
    await lb.wait_state("arn:tg/web", sick, "unhealthy")
    responses = await many(lb.port, 10)
    assert [r.status for r in responses] == [200] * 10
    assert Counter(r.backend for r in responses) == {"s0": 5, "s1": 5}

    # A healthy target appears: only it gets traffic.
    well = backends("well")
    lb.apply([group("arn:tg/web", [*sick, well])])
    await lb.wait_state("arn:tg/web", [well])
    responses = await many(lb.port, 6)
    assert {r.backend for r in responses} == {"well"}


# ---------------------------------------------------------------------------------------------
# 9. response framing (RFC 9112 §6.3)


async def test_head_1xx_204_304_and_close_delimited_framing(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])

    def run() -> list[Response]:
        with Client(lb.port) as c:
            out = [c.request("HEAD", "/head"), c.request("GET", "/echo")]
            out.append(c.request("GET", "/early?code=103"))
            out.append(c.request("POST", "/early?code=100", [("Expect", "100-continue")], b"data"))
            out.append(c.request("GET", "/nobody?code=204"))
            out.append(c.request("GET", "/echo", body=b"after-204"))
            out.append(c.request("GET", "/nobody?code=304"))
            out.append(c.request("GET", "/head"))
            return out

    head, after_head, early, cont, no_content, after_204, not_modified, get_head = await asyncio.to_thread(
        run
    )
    assert head.status == 200 and head.header("content-length") == "100" and head.body == b""
    assert after_head.status == 200
    assert early.interim and early.interim[0][0] == 103
    assert ("Link", "</style.css>; rel=preload") in early.interim[0][1]
    assert early.status == 200 and early.body == b"final"
    assert cont.interim and cont.interim[0][0] == 100 and cont.status == 200 and cont.body == b"final"
    assert no_content.status == 204 and no_content.header("content-length") is None
    assert after_204.status == 200 and after_204.body == b"after-204"
    assert not_modified.status == 304
    assert get_head.status == 200 and get_head.body == b"h" * 100
    # all of that over one pooled target connection
    assert b.connections == 1
    assert len({r.conn_id for r in b.traffic()}) == 1

    def until_close() -> list[Response]:
        with Client(lb.port) as c:
            return [
                c.request("GET", "/until-close"),
                c.request("GET", "/until-close"),
                c.request("GET", "/echo"),
            ]

    first, second, last = await asyncio.to_thread(until_close)
    for r in (first, second):
        assert r.status == 200 and r.chunked and r.body == b"part0;part1;part2;part3;part4;"
        assert r.header("connection") != "close"
    assert last.status == 200
    # each close-delimited response needed its own connection; none was pooled
    traffic = b.traffic()
    conn_ids = [r.conn_id for r in traffic[-3:]]
    assert len(set(conn_ids)) == 3, conn_ids

    # An HTTP/1.0 client gets the close-delimited response as is, and the connection closes.
    def http10() -> Response:
        with Client(lb.port) as c:
            r = c.request("GET", "/until-close", version="HTTP/1.0")
            return r

    r = await asyncio.to_thread(http10)
    assert r.status == 200 and not r.chunked and r.body == b"part0;part1;part2;part3;part4;"

    # An HTTP/1.0 client never gets chunked encoding (the body ends at close instead) nor 1xx.
    def http10_chunked() -> tuple[Response, Response]:
        with Client(lb.port) as c:
            chunked = c.request("GET", "/download?n=70000&chunked=1", version="HTTP/1.0")
        with Client(lb.port) as c:
            early = c.request("GET", "/early?code=103", version="HTTP/1.0")
        return chunked, early

    chunked, early = await asyncio.to_thread(http10_chunked)
    assert chunked.status == 200 and chunked.header("transfer-encoding") is None
    assert not chunked.chunked and chunked.body == b"".join(generate(70000))
    assert early.status == 200 and early.interim == [] and early.body == b"final"
    assert early.header("x-conn") == chunked.header(
        "x-conn"
    )  # a chunked response's target connection is pooled


# ---------------------------------------------------------------------------------------------
# 10. health checks


async def test_new_target_waits_for_its_first_passing_check(lb: Lb, backends: Any) -> None:
    a = backends("a")
    await serving(lb, [a])
    late = backends("late", health_delay_s=1.0)
    hc = HealthCheck(path="/health", interval_s=5, timeout_s=3, healthy_threshold=5, unhealthy_threshold=2)
    lb.apply([group("arn:tg/web", [a, late], hc)])
    assert lb.health("arn:tg/web", late).state == "initial"
    assert lb.health("arn:tg/web", late).reason in ("Elb.RegistrationInProgress", "Elb.InitialHealthChecking")
    responses = await many(lb.port, 10)
    assert {r.backend for r in responses} == {"a"}
    assert late.connections == 0
    await lb.wait_state("arn:tg/web", [late], timeout=2.5)
    responses = await many(lb.port, 10)
    assert Counter(r.backend for r in responses) == {"a": 5, "late": 5}


async def test_first_check_runs_at_once(lb: Lb, backends: Any) -> None:
    b = backends("a")
    hc = HealthCheck(path="/health", interval_s=5, timeout_s=2, healthy_threshold=5, unhealthy_threshold=2)
    started = time.monotonic()
    lb.apply([group("arn:tg/web", [b], hc)])
    await lb.wait_state("arn:tg/web", [b], timeout=0.5)
    assert time.monotonic() - started < 0.5
    assert lb.health("arn:tg/web", b).reason is None


async def test_health_transitions_and_reason_codes(lb: Lb, backends: Any) -> None:
    b = backends("a")
    arn = await serving(lb, [b], hc=HC_FAST)
    started = time.monotonic()
    b.health_status = 503
    await lb.wait_state(arn, [b], "unhealthy", timeout=4)
    assert time.monotonic() - started > 1.0  # two failed checks, a second apart
    view = lb.health(arn, b)
    assert view.reason == "Target.ResponseCodeMismatch"
    assert view.description == "Health checks failed with these codes: [503]"
    b.health_status = 200
    started = time.monotonic()
    await lb.wait_state(arn, [b], "healthy", timeout=4)
    assert time.monotonic() - started > 0.5  # healthy_threshold=2 from unhealthy
    # a timeout
    b.health_delay_s = 2.5
    await lb.wait_state(arn, [b], "unhealthy", timeout=6)
    assert lb.health(arn, b).reason == "Target.Timeout"
    assert lb.health(arn, b).description == "Request timed out"


async def test_failed_health_checks_reason_and_matcher_ranges(lb: Lb, backends: Any) -> None:
    dead = free_port()
    teapot = backends("teapot", health_status=418)
    redirect = backends("redirect", health_status=302)
    ok = backends("ok", health_status=204)
    hc = HealthCheck(
        path="/health",
        interval_s=60,
        timeout_s=1,
        healthy_threshold=2,
        unhealthy_threshold=2,
        matcher="200-299,418",
    )
    lb.apply([group("arn:tg/web", [dead, teapot, redirect, ok], hc)])
    await lb.wait_state("arn:tg/web", [teapot, ok], "healthy")
    await lb.wait_state("arn:tg/web", [dead, redirect], "unhealthy")
    assert lb.health("arn:tg/web", dead).reason == "Target.FailedHealthChecks"
    assert lb.health("arn:tg/web", dead).description == "Health checks failed"
    assert lb.health("arn:tg/web", redirect).reason == "Target.ResponseCodeMismatch"
    assert lb.health("arn:tg/web", redirect).description == "Health checks failed with these codes: [302]"
    assert lb.health("arn:tg/web", 1).state == "unused"
    assert lb.health("arn:tg/web", 1).reason == "Target.NotRegistered"


# ---------------------------------------------------------------------------------------------
# 11. algorithms


async def test_round_robin_is_even(lb: Lb, backends: Any) -> None:
    four = [backends(f"r{i}") for i in range(4)]
    await serving(lb, four)
    responses = await many(lb.port, 200)
    counts = Counter(r.backend for r in responses)
    assert counts == {f"r{i}": 50 for i in range(4)}


async def test_least_outstanding_requests_avoids_busy_target(lb: Lb, backends: Any) -> None:
    a, b = backends("a"), backends("b")
    await serving(lb, [a, b], algorithm="least_outstanding_requests")
    slow = asyncio.ensure_future(fetch(lb.port, path="/slow?s=1.5"))
    await eventually(lambda: a.in_flight + b.in_flight == 1)
    idle = b if a.in_flight else a
    responses = await many(lb.port, 20)
    assert {r.backend for r in responses} == {idle.name}
    assert (await slow).status == 200
    responses = await many(lb.port, 20)
    assert Counter(r.backend for r in responses) == {"a": 10, "b": 10}

    # A client that gives up on a slow request frees its slot at once.
    def abandon() -> None:
        c = Client(lb.port)
        c.send(Client.build("GET", "/slow?s=2"))
        deadline = time.monotonic() + 2
        while a.in_flight + b.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST

    await asyncio.to_thread(abandon)
    runtime_targets = list(lb.rt.groups["arn:tg/web"].targets.values())
    await eventually(lambda: all(t.in_flight == 0 for t in runtime_targets), 1, "in-flight count back to 0")
    responses = await many(lb.port, 10)
    assert Counter(r.backend for r in responses) == {"a": 5, "b": 5}


async def test_slow_start_ramps_a_new_target(lb: Lb, backends: Any) -> None:
    old = backends("old")
    arn = await serving(lb, [old], slow_start_s=4)
    new = backends("new")
    lb.apply([group(arn, [old, new], slow_start_s=4)])
    await lb.wait_state(arn, [new])
    became = time.monotonic()
    # Healthy but warming: the service scheduler does not count it healthy yet (beyond ECS).
    assert lb.health(arn, new).warming and not lb.health(arn, old).warming
    early = await many(lb.port, 200)
    early_share = sum(r.backend == "new" for r in early) / len(early)
    assert time.monotonic() - became < 1.5
    await asyncio.sleep(max(0.0, became + 4.2 - time.monotonic()))
    late = await many(lb.port, 200)
    assert not lb.health(arn, new).warming
    late_share = sum(r.backend == "new" for r in late) / len(late)
    assert early_share < 0.25, early_share
    assert 0.4 <= late_share <= 0.6, late_share


async def test_weighted_forward_to_two_groups(lb: Lb, backends: Any) -> None:
    one, three = backends("one"), backends("three")
    lb.apply(
        [group("arn:tg/one", [one]), group("arn:tg/three", [three])],
        default=forward(("arn:tg/one", 1), ("arn:tg/three", 3)),
    )
    await lb.wait_state("arn:tg/one", [one])
    await lb.wait_state("arn:tg/three", [three])
    responses = await many(lb.port, 800)
    share = sum(r.backend == "three" for r in responses) / 800
    # The pick is random: 3/4 of 800 has a standard deviation of 0.015, and a +-3.3 sigma bound
    # failed about once in a thousand runs. +-5 sigma still fails 1:1 weights (0.5) or all to one.
    assert 0.675 <= share <= 0.825, share


async def test_lb_cookie_stickiness(lb: Lb, backends: Any) -> None:
    three = [backends(f"s{i}") for i in range(3)]
    arn = await serving(lb, three, stickiness_enabled=True, stickiness_duration_s=300)
    first = await fetch(lb.port)
    cookies = first.all("set-cookie")
    assert any(c.startswith("AWSALB=") for c in cookies), cookies
    assert any(c.startswith("AWSALBCORS=") and "SameSite=None" in c and "Secure" in c for c in cookies)
    value = next(c for c in cookies if c.startswith("AWSALB=")).split(";", 1)[0]
    stuck = await many(lb.port, 12, headers=[("Cookie", f"theme=dark; {value}")])
    assert {r.backend for r in stuck} == {first.backend}
    assert all(r.all("set-cookie") for r in stuck)

    # An expired or tampered cookie is ignored: requests are balanced again and get a new cookie.
    expired = encode_cookie(arn, f"i-{three[0].port}:{three[0].port}", time.time() - 10, lb.rt.secret)
    spread = await many(lb.port, 12, headers=[("Cookie", f"AWSALB={expired}")])
    assert len({r.backend for r in spread}) == 3
    assert all(any(c.startswith("AWSALB=") for c in r.all("set-cookie")) for r in spread)
    raw = value.split("=", 1)[1]
    tampered = raw[:10] + ("A" if raw[10] != "A" else "B") + raw[11:]
    spread = await many(lb.port, 12, headers=[("Cookie", f"AWSALB={tampered}")])
    assert len({r.backend for r in spread}) == 3
    # a valid cookie naming a target that went away re-balances too
    gone = first.backend
    remaining = [b for b in three if b.name != gone]
    lb.apply([group(arn, remaining, stickiness_enabled=True, stickiness_duration_s=300)])
    moved = await many(lb.port, 6, headers=[("Cookie", value)])
    assert all(r.status == 200 and r.backend != gone for r in moved)


# ---------------------------------------------------------------------------------------------
# 12. rules


async def test_rule_conditions_and_actions_route_through_the_listener(lb: Lb, backends: Any) -> None:
    names = ["path", "host", "header", "method", "query", "source", "default"]
    bs = {n: backends(n) for n in names}
    groups = [group(f"arn:tg/{n}", [bs[n]]) for n in names]
    rules = [
        rule(1, [Condition("path-pattern", ("/api/*", "/v?/items"))], forward("arn:tg/path")),
        rule(2, [Condition("host-header", ("*.shop.example.com",))], forward("arn:tg/host")),
        rule(3, [Condition("http-header", ("beta*",), header_name="X-Channel")], forward("arn:tg/header")),
        rule(4, [Condition("http-request-method", ("DELETE",))], forward("arn:tg/method")),
        rule(
            5,
            [Condition("query-string", query_pairs=(("lang", "f?"), (None, "debug")))],
            forward("arn:tg/query"),
        ),
        rule(6, [Condition("source-ip", ("10.0.0.0/8",))], fixed(403, "not you")),
        rule(
            7,
            [Condition("path-pattern", ("/src",)), Condition("source-ip", ("127.0.0.1/32",))],
            forward("arn:tg/source"),
        ),
        rule(8, [Condition("path-pattern", ("/fixed",))], fixed(418, '{"tea": true}', "application/json")),
        rule(
            9,
            [Condition("path-pattern", ("/old/*",))],
            Action(
                "redirect",
                redirect_host="new.example.com",
                redirect_path="/new/#{path}",
                redirect_protocol="https",
                redirect_port="443",
                redirect_status=302,
            ),
        ),
        rule(
            10,
            [Condition("path-pattern", ("*",)), Condition("http-header", ("never",), header_name="X-No")],
            fixed(500),
        ),
    ]
    lb.apply(groups, rules, default=forward("arn:tg/default"))
    for g in groups:
        await lb.wait_state(g.arn, [bs[g.arn.rsplit("/", 1)[1]]])

    async def who(**kw: Any) -> str | None:
        r = await fetch(lb.port, **kw)
        assert r.status == 200, (kw, r.status)
        return r.backend

    assert await who(path="/api/users?x=1") == "path"
    assert await who(path="/v2/items") == "path"
    assert await who(path="/v22/items") == "default"
    assert await who(path="/API/users") == "default"  # paths are case-sensitive
    assert await who(host="a.SHOP.example.com:8080") == "host"
    assert await who(host="shop.example.com") == "default"
    assert await who(headers=[("x-channel", "BETA-2")]) == "header"
    assert await who(headers=[("X-Channel", "stable")]) == "default"
    assert await who(headers=[("X-Channel", "beta"), ("X-Channel", "stable")]) == "header"  # repeated fields
    assert await who(method="DELETE") == "method"
    assert await who(method="PUT") == "default"
    assert await who(path="/q?lang=FR") == "query"
    assert await who(path="/q?Debug") == "query"
    assert await who(path="/q?lang=en") == "default"
    assert await who(path="/src", headers=[("X-Forwarded-For", "10.1.2.3")]) == "source"  # the peer, not XFF
    assert await who(path="/api/x", method="DELETE") == "path"  # lowest priority number wins

    r = await fetch(lb.port, path="/fixed")
    assert r.status == 418 and r.body == b'{"tea": true}' and r.header("content-type") == "application/json"
    r = await fetch(lb.port, path="/old/page?q=1", host="www.example.com")
    assert r.status == 302
    assert r.header("location") == "https://new.example.com/new/old/page?q=1"
    r = await fetch(lb.port, method="HEAD", path="/fixed")
    assert r.status == 418


async def test_apply_mid_traffic_drops_no_request(lb: Lb, backends: Any) -> None:
    a, b = backends("a"), backends("b")
    groups = [group("arn:tg/a", [a]), group("arn:tg/b", [b])]
    lb.apply(groups, [rule(1, [Condition("path-pattern", ("/b",))], forward("arn:tg/b"))])
    await lb.wait_state("arn:tg/a", [a])
    await lb.wait_state("arn:tg/b", [b])
    stop = threading.Event()
    results: list[int] = []
    errors: list[BaseException] = []

    def hammer() -> None:
        deadline = time.monotonic() + 10
        try:
            with Client(lb.port) as c:
                while not stop.is_set() and time.monotonic() < deadline and len(results) < 5000:
                    results.append(c.request("POST", "/echo", body=b"payload").status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    slow = [asyncio.ensure_future(fetch(lb.port, path="/slow?s=0.5")) for _ in range(2)]
    for i in range(30):
        if i % 2:
            lb.apply(groups, [rule(1, [Condition("path-pattern", ("/echo",))], forward("arn:tg/b"))])
        else:
            lb.apply(
                groups,
                [rule(i + 1, [Condition("http-request-method", ("POST",))], forward("arn:tg/a"))],
                default=forward("arn:tg/b"),
            )
        await asyncio.sleep(0.02)
    stop.set()
    for w in workers:
        await asyncio.to_thread(w.join, 5)
    assert not errors, errors
    assert [r.status for r in await asyncio.gather(*slow)] == [200, 200]
    assert len(results) > 50
    assert set(results) == {200}
    assert a.traffic() and b.traffic()


# ---------------------------------------------------------------------------------------------
# 13. draining


async def test_draining_finishes_in_flight_requests_then_reports_drained(lb: Lb, backends: Any) -> None:
    a, b = backends("a"), backends("b")
    arn = await serving(lb, [a, b])
    await many(lb.port, 4)  # both targets now hold an idle pooled connection
    assert a.open_traffic_connections >= 1 and b.open_traffic_connections >= 1
    slow = asyncio.ensure_future(fetch(lb.port, path="/slow?s=2.5"))
    await eventually(lambda: a.in_flight + b.in_flight == 1)
    busy, other = (a, b) if a.in_flight else (b, a)
    lb.apply([group(arn, [target(busy, draining=True, deadline=time.time() + 20), other])])
    applied = time.monotonic()
    assert lb.health(arn, busy).state == "draining"
    responses = await many(lb.port, 10)
    assert {r.backend for r in responses} == {other.name}
    # idle pooled connections to the draining target are closed; only the busy one may stay.
    # (A loaded machine may reach this line after the slow request ended: then none stays.)
    await eventually(lambda: busy.open_traffic_connections == busy.in_flight, 2, "idle connections closed")
    if busy.in_flight:
        assert not lb.drained
    r = await slow
    finished = time.monotonic()
    assert r.status == 200 and r.backend == busy.name
    await eventually(lambda: lb.drained, 1, "drained callback")
    arn_, tid, port, when = lb.drained[0]
    assert (arn_, tid, port) == (arn, f"i-{busy.port}", busy.port)
    assert when >= applied and when - finished < 0.5


async def test_drain_deadline_ends_requests_still_running(lb: Lb, backends: Any) -> None:
    a = backends("a")
    arn = await serving(lb, [a])
    slow = asyncio.ensure_future(fetch(lb.port, path="/slow?s=6"))
    await eventually(lambda: a.in_flight == 1)
    started = time.monotonic()
    lb.apply([group(arn, [target(a, draining=True, deadline=time.time() + 1)])])
    r = await asyncio.wait_for(slow, 5)
    took = time.monotonic() - started
    assert_error_page(r, 502, "502 Bad Gateway")
    assert 0.8 < took < 2.8, took
    await eventually(lambda: lb.drained, 1.5, "drained callback")
    assert lb.drained[0][:3] == (arn, f"i-{a.port}", a.port)


async def test_requests_still_connecting_to_a_target_that_leaves_go_to_another(lb: Lb, backends: Any) -> None:
    """A dead copy's bridge address black-holes SYNs: waiting out the drain would fail the request."""
    good, hole = backends("good"), backends("hole")
    arn = await serving(lb, [good, hole])  # HC_ONCE: hole stays "healthy" after what follows
    hole.stop_listening()
    with black_hole(hole.port):
        await asyncio.sleep(0.1)
        pending = [asyncio.ensure_future(fetch(lb.port)) for _ in range(4)]  # round robin: two go to the hole
        await eventually(lambda: len(lb.rt.groups[arn].targets[(f"i-{hole.port}", hole.port)].connecting) >= 1,
                         2, "a connect hanging on the hole")
        started = time.monotonic()
        lb.apply([group(arn, [good, target(hole, draining=True, deadline=time.time() + 30)])])
        responses = await asyncio.wait_for(asyncio.gather(*pending), 5)
        assert [r.status for r in responses] == [200] * 4
        assert {r.backend for r in responses} == {good.name}
        assert time.monotonic() - started < 1.0


async def test_draining_target_with_nothing_in_flight_is_drained_at_once(lb: Lb, backends: Any) -> None:
    a, b = backends("a"), backends("b")
    arn = await serving(lb, [a, b])
    lb.apply([group(arn, [target(a, draining=True, deadline=time.time() + 30), b])])
    await eventually(lambda: lb.drained, 0.5, "drained callback")
    assert lb.drained[0][:3] == (arn, f"i-{a.port}", a.port)


# ---------------------------------------------------------------------------------------------
# 14. retries


async def test_refused_connection_is_retried_on_another_target(lb: Lb, backends: Any) -> None:
    good, doomed = backends("good"), backends("doomed")
    await serving(lb, [good, doomed])  # HC_ONCE: doomed stays "healthy" after it stops listening
    doomed.stop_listening()
    responses = await asyncio.gather(*(fetch(lb.port) for _ in range(2)))
    responses += await many(lb.port, 2)
    assert [r.status for r in responses] == [200] * 4
    assert {r.backend for r in responses} == {"good"}
    assert lb.rt.retries >= 1


async def test_post_with_body_is_not_retried_after_a_reused_connection_dies(lb: Lb, backends: Any) -> None:
    flaky, good = backends("flaky", die_on_reuse=True), backends("good")
    await serving(lb, [flaky, good])

    def run() -> list[Response]:
        with Client(lb.port) as c:
            out = []
            for _ in range(3):  # until flaky answered: round robin sends the next-but-one there too
                r = c.request("GET", "/echo")
                out.append(r)
                if r.backend == "flaky":
                    break
            assert out[-1].backend == "flaky"
            out.append(c.request("GET", "/echo"))  # -> good
            out.append(c.request("POST", "/echo", body=b"important"))  # -> flaky's pooled connection: dies
            return out

    out = await asyncio.to_thread(run)
    assert out[-2].backend == "good"
    assert_error_page(out[-1], 502, "502 Bad Gateway")
    assert not any(r.method == "POST" for r in good.traffic())

    # The same for an idempotent GET without a body: retried on the other target.
    def run_get() -> list[Response]:
        with Client(lb.port) as c:
            out = []
            for _ in range(3):
                r = c.request("GET", "/echo")
                out.append(r)
                if r.backend == "flaky":
                    break
            out.append(c.request("GET", "/echo"))
            out.append(c.request("GET", "/echo?retry-me"))
            return out

    out = await asyncio.to_thread(run_get)
    assert out[-1].status == 200 and out[-1].backend == "good"
    assert [r.target for r in good.traffic()][-1] == "/echo?retry-me"


async def test_retry_budget_stops_retries(lb: Lb, backends: Any) -> None:
    good, doomed = backends("good"), backends("doomed")
    await serving(lb, [good, doomed])
    doomed.stop_listening()
    responses = await many(lb.port, 100)
    statuses = Counter(r.status for r in responses)
    assert statuses[200] + statuses[502] == 100
    rt = lb.rt
    # round robin sent 50 requests to the dead target: ~10 % of all requests were retried
    # (the budget), the rest of those 50 failed
    assert 7 <= rt.retries <= 10, rt.retries
    assert statuses[200] == 50 + rt.retries
    assert statuses[502] == 50 - rt.retries
    assert rt.elb_errors[502] == statuses[502]


async def test_retries_can_be_disabled(backends: Any) -> None:
    rt = ProxyRuntime(retries=False)
    lb = Lb(rt)
    try:
        good, doomed = backends("good"), backends("doomed")
        await serving(lb, [good, doomed])
        doomed.stop_listening()
        responses = await many(lb.port, 4)
        assert sorted(r.status for r in responses) == [200, 200, 502, 502]
        assert rt.retries == 0
    finally:
        await rt.close()


# ---------------------------------------------------------------------------------------------
# 15. persisted health


async def test_restart_resumes_persisted_health_and_probes_at_once(backends: Any, tmp_path: Path) -> None:
    store = Store(tmp_path / "portside.db")
    up, sick = backends("up"), backends("sick", health_status=500)
    hc = HealthCheck(path="/health", interval_s=60, timeout_s=2, healthy_threshold=5, unhealthy_threshold=2)

    rt = ProxyRuntime(store)
    lb = Lb(rt)
    try:
        lb.apply([group("arn:tg/web", [up, sick], hc)])
        await lb.wait_state("arn:tg/web", [up])
        await lb.wait_state("arn:tg/web", [sick], "unhealthy")
    finally:
        await rt.close()
    checks_before = (up.health_checks, sick.health_checks)

    rt = ProxyRuntime(store)
    lb = Lb(rt)
    try:
        lb.apply([group("arn:tg/web", [up, sick], hc)])
        # resumed before any new check
        assert lb.health("arn:tg/web", up).state == "healthy"
        assert lb.health("arn:tg/web", sick).state == "unhealthy"
        assert lb.health("arn:tg/web", sick).reason == "Target.ResponseCodeMismatch"
        r = await fetch(lb.port)
        assert r.status == 200 and r.backend == "up"
        # and probed at once, although the interval is 60 s
        await eventually(
            lambda: up.health_checks > checks_before[0] and sick.health_checks > checks_before[1], 1
        )
        # the unhealthy one needs healthy_threshold (5) passes from its persisted state
        sick.health_status = 200
        await asyncio.sleep(0.3)
        assert lb.health("arn:tg/web", sick).state == "unhealthy"
    finally:
        await rt.close()
        store.close()
