"""HTTPS listeners through the real API: a default certificate plus SNI certificates on one listener."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from botocore.config import Config

from tests.support.server import PortsideProcess, free_port
from tests.support.tls import self_signed

pytestmark = pytest.mark.docker


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = f"proto={self.headers.get('X-Forwarded-Proto')} port={self.headers.get('X-Forwarded-Port')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _served_name(port: int, server_name: str) -> tuple[str, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: " + server_name.encode() + b"\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
    [common_name] = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common_name.value), reply


def test_two_sni_names_on_one_https_listener(tmp_path: Path, backend: int) -> None:
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1")
    server.start()
    try:
        arns = {}
        for name in ("a.example.test", "b.example.test"):
            cert, key = self_signed(tmp_path, name)
            result = subprocess.run(
                [sys.executable, "-m", "portside.cli.main", "cert", "import", name, str(cert), str(key), "--endpoint", server.endpoint],
                capture_output=True, text=True, timeout=60,
            )
            assert result.returncode == 0, result.stderr
            arns[name] = result.stdout.strip().split()[-1]
            assert arns[name].startswith("arn:aws:acm:")
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        lb = elb.create_load_balancer(Name="tls", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elb.create_target_group(
            Name="tls", Protocol="HTTP", Port=backend, VpcId="v", TargetType="ip", HealthCheckIntervalSeconds=2,
            HealthCheckTimeoutSeconds=1,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.1", "Port": backend}])
        port = free_port()
        listener = elb.create_listener(
            LoadBalancerArn=lb, Protocol="HTTPS", Port=port, Certificates=[{"CertificateArn": arns["a.example.test"]}],
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
        )["Listeners"][0]["ListenerArn"]
        elb.add_listener_certificates(ListenerArn=listener, Certificates=[{"CertificateArn": arns["b.example.test"]}])
        listed = elb.describe_listener_certificates(ListenerArn=listener)["Certificates"]
        assert {(c["CertificateArn"], c["IsDefault"]) for c in listed} == {
            (arns["a.example.test"], True), (arns["b.example.test"], False)
        }
        elb.get_waiter("target_in_service").wait(TargetGroupArn=tg, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        for name in ("a.example.test", "b.example.test"):
            served, reply = _served_name(port, name)
            assert served == name
            assert reply.startswith(b"HTTP/1.1 200")
            assert f"proto=https port={port}".encode() in reply
        assert _served_name(port, "other.example.test")[0] == "a.example.test"  # the default certificate
        with pytest.raises(elb.exceptions.ClientError):
            elb.create_listener(
                LoadBalancerArn=lb, Protocol="HTTPS", Port=free_port(),
                Certificates=[{"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/nope"}],
                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
            )
    finally:
        server.stop()
