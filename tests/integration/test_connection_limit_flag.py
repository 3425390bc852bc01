"""``--max-client-connections`` on a real server: idle connections make room, then new ones are
refused, and /metrics counts both (the behaviour itself is tested in test_proxy_limits.py)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import PortsideProcess, free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker]

LIMIT = 3


@pytest.fixture
def server(tmp_path: Path, docker_client: Any) -> Iterator[PortsideProcess]:
    started = PortsideProcess(tmp_path / "state", "--max-client-connections", str(LIMIT))
    started.start()
    yield started
    started.stop()


def _metrics(server: PortsideProcess) -> dict[str, float]:
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("portside_lb_")}


def _listener(server: PortsideProcess) -> int:
    elb = server.client("elbv2")
    lb = elb.create_load_balancer(Name="limit", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
    port = free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    return port


def _closed(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_the_flag_limits_each_listener_and_metrics_count_evictions_and_refusals(server: PortsideProcess) -> None:
    port = _listener(server)
    assert _metrics(server)["portside_lb_client_connections_limit"] == LIMIT
    opened: list[socket.socket] = []
    try:
        for _ in range(LIMIT):  # idle keep-alive connections, each after one answered request
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            opened.append(sock)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: limit\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        newcomer = socket.create_connection(("127.0.0.1", port), timeout=5)  # closes an idle one for room
        opened.append(newcomer)
        newcomer.sendall(b"GET / HTTP/1.1\r\nHost: limit\r\n\r\n")
        assert newcomer.recv(4096).startswith(b"HTTP/1.1 200")
        eventually(lambda: _metrics(server)["portside_lb_evicted_connections_total"] >= 1, 5, what="an eviction counted")
        for sock in opened:  # every slot now holds a request in progress: a head begun
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: limit\r\n")
            except OSError:
                pass  # the connection closed for room
        refused = socket.create_connection(("127.0.0.1", port), timeout=5)
        opened.append(refused)
        assert _closed(refused, 3)
        metrics = _metrics(server)
        assert metrics["portside_lb_refused_connections_total"] >= 1
        assert 1 <= metrics["portside_lb_client_connections"] <= LIMIT
    finally:
        for sock in opened:
            sock.close()
