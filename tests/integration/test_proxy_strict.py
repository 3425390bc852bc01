"""Malformed and hostile requests (and tolerated responses) through a real listener.

Each test sends its bad input over a real socket to a real ``ProxyRuntime`` listener with real
backends (``tests.support``), checks the answer and what reached the target, and then shows that
the listener still serves a normal client. Network: 127.0.0.1 only (and, for the busybox CGI
test, the bridge address of a container the test starts).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, BinaryIO

from portside.core.lb.model import Condition, HealthCheck, Target
from tests.integration.test_proxy import (  # noqa: F401  (lb, backends: fixtures)
    Client,
    Lb,
    Response,
    backends,
    fetch,
    fixed,
    forward,
    group,
    lb,
    rule,
    serving,
)
from tests.support.backends import Request, read_body
from tests.support.raw_target import raw_targets  # noqa: F401  (a fixture)


def exchange_raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read everything until the proxy closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


async def still_serving(lb: Lb, backend: Any = None) -> None:
    """A normal client is served (and, when given, reached ``backend``)."""
    before = len(backend.traffic()) if backend is not None else 0
    r = await fetch(lb.port, path="/echo?normal")
    assert r.status == 200, r
    if backend is not None:
        assert len(backend.traffic()) == before + 1


# ---------------------------------------------------------------------------------------------
# Smuggling through Connection


async def test_connection_cannot_remove_request_framing_or_host(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\n\r\n"

    def run() -> list[Response]:
        out = []
        with Client(lb.port) as attacker:
            # Were Content-Length dropped, the target would read the body as the next request
            # on the pooled connection, ahead of the next client's.
            out.append(attacker.request("POST", "/echo", [("Connection", "content-length")], body=smuggled))
            attacker.send(
                b"POST /echo HTTP/1.1\r\nHost: app.example.com\r\nConnection: Transfer-Encoding, host\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
            )
            out.append(attacker.read_response())
        with Client(lb.port) as victim:
            out.append(victim.request("GET", "/echo?victim", [("Cookie", "session=victim")]))
        return out

    responses = await asyncio.to_thread(run)
    assert [r.status for r in responses] == [200, 200, 200]
    assert responses[0].body == smuggled and responses[1].body == smuggled
    seen = b.traffic()
    assert [r.target for r in seen] == ["/echo", "/echo", "/echo?victim"]
    assert seen[0].header("content-length") == str(len(smuggled))
    assert seen[1].header("transfer-encoding") == "chunked"
    assert all(r.header("host") == "app.example.com" for r in seen)

    # Framing the proxy cannot re-frame faithfully never reaches a target.
    both = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    coded = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    bare = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc"
    answers = [status_of(await asyncio.to_thread(exchange_raw, lb.port, data)) for data in (both, coded, bare)]
    assert answers == [400, 501, 501]
    assert len(b.traffic()) == 3
    await still_serving(lb, b)


async def test_connection_cannot_remove_response_framing(lb: Lb, raw_targets: Any) -> None:
    def answer(sock: socket.socket, rfile: BinaryIO, req: Request) -> bool:
        read_body(rfile, req)
        if req.path == "/cl":
            sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello")
        elif req.path == "/te":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n"
            )
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    target = raw_targets(answer)
    await serving(lb, [target.port])  # type: ignore[list-item]

    def run() -> list[Response]:
        with Client(lb.port, timeout=5) as c:
            return [c.request("GET", "/cl"), c.request("GET", "/te"), c.request("GET", "/after")]

    cl, te, after = await asyncio.to_thread(run)
    assert (cl.status, cl.body, cl.header("content-length")) == (200, b"hello", "5")
    assert (te.status, te.body) == (200, b"hello") and (te.chunked or te.header("content-length") == "5")
    assert (after.status, after.body) == (200, b"ok")


# ---------------------------------------------------------------------------------------------
# Host, request line, methods


async def test_host_must_be_one_field_in_http_1_1(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    no_host = await asyncio.to_thread(exchange_raw, lb.port, b"GET /echo HTTP/1.1\r\n\r\n")
    two_hosts = await asyncio.to_thread(
        exchange_raw, lb.port, b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
    )
    two_in_1_0 = await asyncio.to_thread(
        exchange_raw, lb.port, b"GET /echo HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
    )
    assert [status_of(r) for r in (no_host, two_hosts, two_in_1_0)] == [400, 400, 400]
    assert b.traffic() == []
    # HTTP/1.0 may leave Host out.
    assert status_of(await asyncio.to_thread(exchange_raw, lb.port, b"GET /echo?ten HTTP/1.0\r\n\r\n")) == 200
    await still_serving(lb, b)


async def test_absolute_form_is_routed_and_forwarded_as_origin_form(lb: Lb, backends: Any) -> None:
    api, web = backends("api"), backends("web")
    lb.apply(
        [group("arn:tg/api", [api]), group("arn:tg/web", [web])],
        rules=[rule(1, [Condition("host-header", ("api.example.com",))], forward("arn:tg/api"))],
        default=forward("arn:tg/web"),
    )
    await lb.wait_state("arn:tg/api", [api])
    await lb.wait_state("arn:tg/web", [web])
    raw = await asyncio.to_thread(
        exchange_raw,
        lb.port,
        b"GET http://api.example.com/v1/x?q=1 HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 200 and b"X-Backend: api" in raw
    seen = api.traffic()[-1]
    assert seen.target == "/v1/x?q=1"
    assert [v for k, v in seen.headers if k.lower() == "host"] == ["api.example.com"]
    assert web.traffic() == []
    bad = await asyncio.to_thread(exchange_raw, lb.port, b"GET ftp://api.example.com/ HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(bad) == 400
    await still_serving(lb, web)


async def test_request_line_versions(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])

    def send(line: bytes) -> bytes:
        return exchange_raw(lb.port, line + b"\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")

    later_minor = await asyncio.to_thread(send, b"GET /echo?v=1.2 HTTP/1.2")
    assert status_of(later_minor) == 200
    assert b.traffic()[-1].version == "HTTP/1.1"  # served as HTTP/1.1
    for line in (b"GET /echo HTTP/2.0", b"GET /echo HTTP/3.0"):
        assert status_of(await asyncio.to_thread(send, line)) == 505, line
    nine = await asyncio.to_thread(exchange_raw, lb.port, b"GET /echo\r\n\r\n")
    assert status_of(nine) == 400
    assert len(b.traffic()) == 1
    await still_serving(lb, b)


async def test_connect_is_refused_and_never_tunnelled(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    raw = await asyncio.to_thread(
        exchange_raw,
        lb.port,
        b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\nGET /echo?through HTTP/1.1\r\nHost: x\r\n\r\n"
        % (b.port, b.port),
    )
    assert status_of(raw) == 405 and raw.count(b"HTTP/1.1") == 1
    assert b.traffic() == [] and b.connections == 0
    await still_serving(lb, b)


# ---------------------------------------------------------------------------------------------
# Upgrades


async def test_only_websocket_upgrades_are_passed_on(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    after = b"GET /echo?after-upgrade HTTP/1.1\r\nHost: app.example.com\r\n\r\n"
    # h2c: the Upgrade field is dropped, the request answered as plain HTTP/1.1, and as the
    # client expects a switch that never comes, the connection ends there.
    raw = await asyncio.to_thread(
        exchange_raw,
        lb.port,
        b"GET /echo?h2c HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + after,
    )
    assert status_of(raw) == 200 and raw.count(b"HTTP/1.1 ") == 1
    seen = b.traffic()
    assert [r.target for r in seen] == ["/echo?h2c"]
    assert "upgrade" not in seen[0].header_names() and "http2-settings" not in seen[0].header_names()

    # An Upgrade field without "Connection: upgrade" is no upgrade request: never forwarded as one.
    r = await fetch(lb.port, path="/echo?half", headers=[("Upgrade", "websocket")])
    assert r.status == 200
    assert "upgrade" not in b.traffic()[-1].header_names()
    await still_serving(lb, b)


async def test_a_refused_websocket_upgrade_tunnels_nothing(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    # No Sec-WebSocket-Key: the backend answers 400 instead of 101. The bytes the client sent
    # after its upgrade request must never reach the target, as a tunnel or as requests.
    raw = await asyncio.to_thread(
        exchange_raw,
        lb.port,
        b"GET /ws HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /echo?tunnelled HTTP/1.1\r\nHost: app.example.com\r\n\r\n",
    )
    assert status_of(raw) == 400 and raw.endswith(b"no upgrade")
    assert [r.target for r in b.traffic()] == ["/ws"]
    await still_serving(lb, b)


async def test_a_101_to_a_request_that_asked_for_no_upgrade_is_a_502(lb: Lb, raw_targets: Any) -> None:
    def answer(sock: socket.socket, rfile: BinaryIO, req: Request) -> bool:
        read_body(rfile, req)
        if req.path == "/switch":
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            return False
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    target = raw_targets(answer)
    await serving(lb, [target.port])  # type: ignore[list-item]
    r = await fetch(lb.port, path="/switch", headers=[("Connection", "Upgrade"), ("Upgrade", "h2c")])
    assert r.status == 502
    r = await fetch(lb.port, path="/switch")
    assert r.status == 502
    assert (await fetch(lb.port, path="/fine")).body == b"ok"


# ---------------------------------------------------------------------------------------------
# Pipelining after Connection: close, and limits on the head


async def test_nothing_pipelined_after_connection_close_reaches_a_target(lb: Lb, backends: Any) -> None:
    b = backends("a")
    lb.apply(
        [group("arn:tg/web", [b])],
        rules=[rule(1, [Condition("path-pattern", ("/fixed",))], fixed(200, "fixed"))],
        default=forward("arn:tg/web"),
    )
    await lb.wait_state("arn:tg/web", [b])
    second = b"GET /echo?second HTTP/1.1\r\nHost: app.example.com\r\n\r\n"
    for first in (b"/slow?s=0.3", b"/fixed", b"/echo?first"):
        raw = await asyncio.to_thread(
            exchange_raw,
            lb.port,
            b"GET %s HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n" % first + second,
        )
        assert status_of(raw) == 200 and raw.count(b"HTTP/1.1 ") == 1, raw
        assert b"Connection: close" in raw
    assert [r.target for r in b.traffic()] == ["/slow?s=0.3", "/echo?first"]
    await still_serving(lb, b)


async def test_oversized_request_target_and_too_many_fields(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    at_limit = "/echo?" + "a" * (16 * 1024 - len("/echo?"))
    assert (await fetch(lb.port, path=at_limit)).status == 200
    raw = await asyncio.to_thread(
        exchange_raw, lb.port, b"GET %s HTTP/1.1\r\nHost: app.example.com\r\n\r\n" % (at_limit + "a").encode()
    )
    assert status_of(raw) == 414
    hundred = [(f"X-F{i}", "v") for i in range(99)]  # and Host: 100 fields
    assert (await fetch(lb.port, headers=hundred)).status == 200
    raw = await asyncio.to_thread(
        exchange_raw, lb.port, Client.build(headers=[*hundred, ("X-One-Too-Many", "v")])
    )
    assert status_of(raw) == 431
    assert len(b.traffic()) == 2
    await still_serving(lb, b)


async def test_a_bad_request_pipelined_behind_a_good_one_is_answered_after_it(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    raw = await asyncio.to_thread(
        exchange_raw,
        lb.port,
        Client.build("GET", "/slow?s=0.3") + b"GET /echo HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
    )
    first, _, rest = raw.partition(b"HTTP/1.1 400")
    assert status_of(first) == 200 and rest, raw
    assert [r.target for r in b.traffic()] == ["/slow?s=0.3"]
    await still_serving(lb, b)


async def test_nothing_after_a_refused_request_reaches_a_target(lb: Lb, backends: Any) -> None:
    b = backends("a")
    await serving(lb, [b])
    follower = Client.build("GET", "/echo?follower")
    refused = {
        463: Client.build(headers=[("X-Forwarded-For", ", ".join(f"10.0.0.{i}" for i in range(31)))]),
        414: Client.build(path="/" + "a" * 17000),
        431: Client.build(headers=[(f"X-F{i}", "v") for i in range(100)]),
        400: b"GET /echo HTTP/1.1\r\n\r\n",
        505: b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n",
        405: b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        501: b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    }
    for status, data in refused.items():
        raw = await asyncio.to_thread(exchange_raw, lb.port, data + follower)
        assert status_of(raw) == status and raw.count(b"HTTP/1.1 ") == 1, raw[:300]
    assert b.traffic() == []
    await still_serving(lb, b)


# ---------------------------------------------------------------------------------------------
# Tolerated responses: bare LF line endings, as nginx and HAProxy accept


async def test_bare_lf_response_heads_from_a_busybox_cgi_script(lb: Lb, run_container: Any, busybox_image: str) -> None:
    script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho bare-lf\n"
    container = run_container(
        busybox_image,
        [
            "sh", "-c",
            'mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/index.html && printf "%s" "$SCRIPT" > /tmp/www/cgi-bin/lf'
            " && chmod 755 /tmp/www/cgi-bin/lf && exec busybox httpd -f -p 80 -h /tmp/www",
        ],
        environment={"SCRIPT": script},
    )
    address = ""
    deadline = time.monotonic() + 20
    while not address and time.monotonic() < deadline:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        if not address:
            await asyncio.sleep(0.2)
    assert address, "the container got no bridge address"
    hc = HealthCheck(path="/", interval_s=60, timeout_s=2, healthy_threshold=2, unhealthy_threshold=2)
    lb.apply([group("arn:tg/cgi", [Target("i-cgi", 80, address)], hc)])

    def wait_served() -> Response:
        deadline = time.monotonic() + 20
        while True:
            try:
                with Client(lb.port) as c:
                    r = c.request("GET", "/cgi-bin/lf")
                if r.status != 503 or time.monotonic() > deadline:
                    return r
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    r = await asyncio.to_thread(wait_served)
    assert r.status == 200, (r.status, r.body)
    assert r.header("content-type") == "text/plain"
    assert r.body == b"bare-lf\n"
    # Requests stay strict: a bare LF in a request head is a 400.
    raw = await asyncio.to_thread(exchange_raw, lb.port, b"GET /cgi-bin/lf HTTP/1.1\nHost: a\n\n")
    assert status_of(raw) == 400
    with Client(lb.port) as c:
        assert (await asyncio.to_thread(c.request, "GET", "/cgi-bin/lf")).body == b"bare-lf\n"
