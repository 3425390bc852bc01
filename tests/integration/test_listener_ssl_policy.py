"""An HTTPS listener's SslPolicy on the wire: a real server process, driven by the AWS CLI v1, and a
real TLS client refused below the policy's lowest version (and above its highest) and served at it."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.support.aws_cli import AwsCli
from tests.support.server import PortsideProcess, free_port
from tests.support.tls import self_signed
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

V = ssl.TLSVersion


def get(port: int, version: ssl.TLSVersion) -> bytes | None:
    """The answer to GET / over TLS limited to ``version``, or None when the handshake is refused."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 on purpose
        client.minimum_version = client.maximum_version = version
    client.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client would speak TLS 1.1: only the server may refuse
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            tls = client.wrap_socket(raw, server_hostname="policy.test")
        except (ssl.SSLError, ConnectionResetError):
            return None
        with tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: policy.test\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
            return reply


def test_the_listener_policy_decides_which_tls_versions_are_served(tmp_path: Path) -> None:
    server = PortsideProcess(tmp_path / "state")
    server.start()
    try:
        cert, key = self_signed(tmp_path, "policy.test")
        imported = subprocess.run(
            [sys.executable, "-m", "portside.cli.main", "cert", "import", "policy", str(cert), str(key),
             "--endpoint", server.endpoint],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert imported.returncode == 0, imported.stderr
        cert_arn = imported.stdout.strip().split()[-1]
        aws = AwsCli(server, tmp_path, "elbv2")

        [policy] = aws("describe-ssl-policies", "--names", "ELBSecurityPolicy-TLS-1-2-2017-01")["SslPolicies"]
        assert policy["SslProtocols"] == ["TLSv1.2"]
        aws.fails("SSLPolicyNotFound", "describe-ssl-policies", "--names", "ELBSecurityPolicy-Nope")

        lb = aws("create-load-balancer", "--name", "policy", "--scheme", "internal")["LoadBalancers"][0]
        port = free_port()
        answer = json.dumps([{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "200", "ContentType": "text/plain", "MessageBody": "served"}}])
        aws.fails("SSLPolicyNotFound", "create-listener", "--load-balancer-arn", lb["LoadBalancerArn"],
                  "--protocol", "HTTPS", "--port", str(port), "--certificates", f"CertificateArn={cert_arn}",
                  "--ssl-policy", "ELBSecurityPolicy-Nope", "--default-actions", answer)
        assert aws("describe-listeners", "--load-balancer-arn", lb["LoadBalancerArn"])["Listeners"] == []

        [listener] = aws(
            "create-listener", "--load-balancer-arn", lb["LoadBalancerArn"], "--protocol", "HTTPS",
            "--port", str(port), "--certificates", f"CertificateArn={cert_arn}",
            "--ssl-policy", "ELBSecurityPolicy-TLS-1-2-2017-01", "--default-actions", answer,
        )["Listeners"]
        assert listener["SslPolicy"] == "ELBSecurityPolicy-TLS-1-2-2017-01"
        served = eventually(lambda: get(port, V.TLSv1_2), what="an answer over TLS 1.2")
        assert served.startswith(b"HTTP/1.1 200") and served.endswith(b"served")
        assert get(port, V.TLSv1_1) is None  # below the policy's lowest version
        assert get(port, V.TLSv1_3) is None  # above its highest

        aws("modify-listener", "--listener-arn", listener["ListenerArn"], "--ssl-policy", "ELBSecurityPolicy-TLS-1-1-2017-01")
        served = eventually(lambda: get(port, V.TLSv1_1), what="an answer over TLS 1.1 once the policy allows it")
        assert served.startswith(b"HTTP/1.1 200")

        modified = aws("modify-listener", "--listener-arn", listener["ListenerArn"],
                       "--ssl-policy", "ELBSecurityPolicy-TLS13-1-3-2021-06")["Listeners"][0]
        assert modified["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"
        eventually(lambda: get(port, V.TLSv1_2) is None, what="TLS 1.2 refused after the policy change")
        assert (get(port, V.TLSv1_3) or b"").startswith(b"HTTP/1.1 200")
        aws.fails("SSLPolicyNotFound", "modify-listener", "--listener-arn", listener["ListenerArn"],
                  "--ssl-policy", "ELBSecurityPolicy-Nope")
        [kept] = aws("describe-listeners", "--listener-arns", listener["ListenerArn"])["Listeners"]
        assert kept["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"
        assert (get(port, V.TLSv1_3) or b"").startswith(b"HTTP/1.1 200")

        server.stop()  # the policy is stored: a restarted server binds the listener with it
        server.start()
        def after_restart() -> bytes | None:
            try:
                return get(port, V.TLSv1_3)
            except ConnectionRefusedError:  # not bound yet
                return None

        served = eventually(after_restart, what="the listener again after a restart")
        assert served.startswith(b"HTTP/1.1 200")
        assert get(port, V.TLSv1_2) is None
    finally:
        server.stop()
