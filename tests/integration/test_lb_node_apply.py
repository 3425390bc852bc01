"""lb_node.LbNode applying snapshots in process: a real ProxyRuntime, real sockets on 127.0.0.2,
real backends on 127.0.0.1. What the node does with a snapshot that does not read, a listener port
someone else holds, a target that is the API, HTTPS certificates, and a restart with its state dir."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.x509.oid import NameOID

from portside.agent.http_link import HttpLink
from portside.core.lb import snapshot
from portside.core.lb.model import (
    Action,
    Certificate,
    HealthCheck,
    LbConfig,
    Listener,
    Rule,
    Target,
    TargetGroup,
    TargetGroupAttributes,
    WeightedTargetGroup,
)
from portside.lb_node import CERTIFICATES_DIR, SNAPSHOT_FILE, LbNode, LbNodeOptions
from portside.proxy.runtime import ProxyRuntime
from tests.support.backends import Backend
from tests.support.server import free_port
from tests.support.tls import self_signed

NODE = "127.0.0.2"
API = "http://127.0.0.1:7"  # never called: these tests hand the node its snapshots
CERT_ARN = "arn:aws:acm:us-east-1:000000000000:certificate/node"


def document(
    port: int, backend: Backend, protocol: str = "HTTP", pems: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A snapshot as WatchRoutes sends it: one listener forwarding to one ip target."""
    group = TargetGroup(
        "arn:tg/g",
        "g",
        "HTTP",
        80,
        "ip",
        HealthCheck(path="/health", interval_s=1),
        TargetGroupAttributes(),
        targets=(Target("127.0.0.1", backend.port, "127.0.0.1"),),
    )
    forward = Action("forward", target_groups=(WeightedTargetGroup(group.arn),))
    certs = (Certificate(CERT_ARN, "server-side.crt", "server-side.key"),) if pems else ()
    listener = Listener(
        "arn:l/1",
        "arn:lb/1",
        protocol,
        port,
        "127.0.0.1",
        (Rule("arn:r/d", 50001, (), (forward,), True),),
        certificates=certs,
    )
    body = snapshot.config_to_json(LbConfig(listeners=(listener,), target_groups={group.arn: group}))
    body["certificates"] = {CERT_ARN: {"certificate": pems[0], "privateKey": pems[1]}} if pems else {}
    body["revision"] = snapshot.revision(body)
    return body


def fetch(url: str) -> str | None:
    """The answering backend's name (X-Backend), or None when nothing answers."""
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url + "/echo", timeout=3, context=insecure) as reply:
            return reply.headers.get("X-Backend")
    except (OSError, urllib.error.URLError):
        return None


def served_name(port: int) -> str:
    """The common name of the certificate the node's listener on ``port`` presents."""
    pem = ssl.get_server_certificate((NODE, port), timeout=3)
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def answers(url: str, name: str | None, timeout: float = 10) -> None:
    """Wait (bounded) until requests through ``url`` are answered by backend ``name`` (None: by none)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = "?"
    while asyncio.get_running_loop().time() < deadline:
        last = await asyncio.to_thread(fetch, url)
        if last == name:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url}: wanted {name!r}, last answer {last!r}")


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    one, two = Backend(name="one"), Backend(name="two")
    yield one, two
    one.close()
    two.close()


def make_node(state_dir: Path, servers: list[str] | None = None) -> LbNode:
    options = LbNodeOptions(
        servers=servers or [API],
        credentials_file="",
        profile="lb",
        region="us-east-1",
        state_dir=state_dir,
        bind_address=NODE,
    )
    state_dir.mkdir(mode=0o700, exist_ok=True)
    return LbNode(options, HttpLink(options.servers, Credentials("k", "s"), "us-east-1"), ProxyRuntime(None))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[LbNode]:
    made = make_node(tmp_path / "node")
    yield made
    await made.runtime.close()
    await made.link.close()


async def test_a_snapshot_that_does_not_read_leaves_the_last_good_one_serving(
    node: LbNode, backends: tuple[Backend, Backend], caplog: pytest.LogCaptureFixture
) -> None:
    one, two = backends
    port = free_port()
    good = document(port, one)
    assert node.apply(good)
    await answers(f"http://{NODE}:{port}", "one")

    broken = document(port, two)
    broken["listeners"][0]["port"] = "eighty"
    broken["revision"] = snapshot.revision(broken)
    with caplog.at_level(logging.ERROR, "portside.lb"):
        assert node.apply(broken) is False
    assert "listeners[0].port: expected int, got str" in caplog.text
    assert node.serving == good["revision"] and node.seen == broken["revision"]  # waits for the next change
    await answers(f"http://{NODE}:{port}", "one")

    moved = free_port()
    assert node.apply(document(moved, two))
    await answers(f"http://{NODE}:{moved}", "two")
    assert await asyncio.to_thread(fetch, f"http://{NODE}:{port}") is None  # the old port is closed


async def test_a_listener_whose_port_is_held_is_bound_when_it_is_free(
    node: LbNode, backends: tuple[Backend, Backend], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((NODE, port))
    holder.listen(1)
    with caplog.at_level(logging.ERROR, "portside.lb"):
        assert node.apply(document(port, backends[0]))
    assert f"not served on this node yet: Port {port} on {NODE} is already in use" in caplog.text
    assert node.runtime.listeners == {}
    holder.close()
    node.bind_missing()  # what the watch does at every answer
    await answers(f"http://{NODE}:{port}", "one")


async def test_a_target_that_is_the_api_is_left_out(
    tmp_path: Path, backends: tuple[Backend, Backend], caplog: pytest.LogCaptureFixture
) -> None:
    one = backends[0]
    node = make_node(tmp_path / "node", servers=[f"http://127.0.0.1:{one.port}"])  # the "API" is backend one
    try:
        with caplog.at_level(logging.WARNING, "portside.lb"):
            assert node.apply(document(free_port(), one))
        assert node.runtime.groups["arn:tg/g"].targets == {}
        assert f"Target 127.0.0.1 port {one.port} is the portside API's own address" in caplog.text
    finally:
        await node.runtime.close()
        await node.link.close()


async def test_https_listeners_get_the_snapshots_certificates_and_a_restart_serves_the_kept_snapshot(
    tmp_path: Path, node: LbNode, backends: tuple[Backend, Backend]
) -> None:
    one = backends[0]
    port = free_port()
    first = tuple(p.read_text() for p in self_signed(tmp_path, "first.test"))
    assert node.apply(document(port, one, "HTTPS", first))  # type: ignore[arg-type]
    await answers(f"https://{NODE}:{port}", "one")
    folder = node.options.state_dir / CERTIFICATES_DIR
    files = sorted(folder.iterdir())
    assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert (node.options.state_dir / SNAPSHOT_FILE).stat().st_mode & 0o777 == 0o600

    renewed = tuple(p.read_text() for p in self_signed(tmp_path, "renewed.test"))
    assert node.apply(document(port, one, "HTTPS", renewed))  # type: ignore[arg-type]
    now = sorted(folder.iterdir())
    assert len(now) == 2 and not set(now) & set(files)  # the old key is gone from the disk
    await answers(f"https://{NODE}:{port}", "one")
    assert await asyncio.to_thread(served_name, port) == "renewed.test"

    garbage = document(port, one, "HTTPS", ("not a certificate", "not a key"))
    assert node.apply(garbage) is False  # logged; the listener keeps its certificate
    await answers(f"https://{NODE}:{port}", "one")
    assert await asyncio.to_thread(served_name, port) == "renewed.test"
    assert node.apply(document(port, one, "HTTPS", renewed))  # type: ignore[arg-type]

    await node.runtime.close()  # the node stops; another starts on its state dir, control plane away
    again = make_node(node.options.state_dir)
    try:
        again.restore()
        assert again.serving == node.serving
        await answers(f"https://{NODE}:{port}", "one")
    finally:
        await again.runtime.close()
        await again.link.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "10.0.0.1:7070"], "--server 10.0.0.1:7070: must be an http:// or https:// URL"),
        (
            ["--server", "http://127.0.0.1:7", "--bind-address", "lb.local"],
            "--bind-address lb.local: must be an IP address",
        ),
        (["--server", "http://127.0.0.1:7", "--profile", "nobody"], "no [nobody] section (--profile)"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(tmp_path: Path, args: list[str], message: str) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[lb]\naws_access_key_id = AKIDLB\naws_secret_access_key = secret\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "portside.cli.main",
            "lb",
            "--credentials",
            str(credentials),
            "--state-dir",
            str(tmp_path / "node"),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "node" / SNAPSHOT_FILE).exists()
