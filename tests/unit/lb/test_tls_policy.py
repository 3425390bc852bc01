"""A listener's security policy on its TLS context: real handshakes over loopback with a real TLS client."""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from pathlib import Path

import pytest

from portside.core.lb import ssl_policies
from portside.core.lb.model import DEFAULT_SSL_POLICY, Certificate
from portside.proxy.tls import apply_policy, server_context
from tests.support.tls import self_signed

V = ssl.TLSVersion


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    cert, key = self_signed(tmp_path, "policy.test")
    return Certificate("arn:aws:acm:us-east-1:000000000000:certificate/p", str(cert), str(key))


def handshake(server: ssl.SSLContext, version: ssl.TLSVersion, ciphers: str | None = None) -> str | None:
    """The version a client limited to ``version`` (and ``ciphers``) negotiates, or None when refused."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the client side of TLS 1.0/1.1 on purpose
        client.minimum_version = version
        client.maximum_version = version
    client.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")  # the client would try anything
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)

        def serve() -> None:
            conn, _ = listening.accept()
            try:
                with server.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listening.getsockname(), timeout=10) as raw:
                try:
                    with client.wrap_socket(raw) as tls:
                        return tls.version()
                except (ssl.SSLError, ConnectionResetError):
                    return None
        finally:
            thread.join(10)


ALL = (V.TLSv1, V.TLSv1_1, V.TLSv1_2, V.TLSv1_3)


@pytest.mark.parametrize(
    ("policy", "accepted"),
    [
        (DEFAULT_SSL_POLICY, ("TLSv1", "TLSv1.1", "TLSv1.2")),
        ("ELBSecurityPolicy-TLS-1-2-2017-01", ("TLSv1.2",)),
        ("ELBSecurityPolicy-TLS-1-1-2017-01", ("TLSv1.1", "TLSv1.2")),
        ("ELBSecurityPolicy-TLS13-1-2-2021-06", ("TLSv1.2", "TLSv1.3")),
        ("ELBSecurityPolicy-TLS13-1-3-2021-06", ("TLSv1.3",)),
        ("ELBSecurityPolicy-TLS13-1-0-2021-06", ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
    ],
)
def test_a_policy_accepts_its_versions_and_refuses_the_others(
    certificate: Certificate, policy: str, accepted: tuple[str, ...]
) -> None:
    context = server_context((certificate,), policy)
    assert [handshake(context, v) for v in ALL] == [name if name in accepted else None for name in ssl_policies.PROTOCOLS]


def test_ciphers_outside_the_policy_are_refused(certificate: Certificate) -> None:
    strict = server_context((certificate,), "ELBSecurityPolicy-FS-1-2-Res-2020-10")  # ECDHE with AES-GCM only
    assert handshake(strict, V.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256") == "TLSv1.2"
    assert handshake(strict, V.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256") is None  # in 2016-08, not in this one
    assert handshake(strict, V.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305") is None  # in no AWS policy
    legacy = server_context((certificate,), DEFAULT_SSL_POLICY)
    assert handshake(legacy, V.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256") == "TLSv1.2"
    assert handshake(legacy, V.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305") is None


def test_applying_another_policy_to_a_live_context_narrows_and_widens_it(certificate: Certificate) -> None:
    context = server_context((certificate,), "ELBSecurityPolicy-TLS13-1-3-2021-06")
    assert handshake(context, V.TLSv1_2) is None
    apply_policy(context, "ELBSecurityPolicy-TLS-1-2-2017-01")
    assert handshake(context, V.TLSv1_2) == "TLSv1.2" and handshake(context, V.TLSv1_3) is None
    apply_policy(context, "ELBSecurityPolicy-TLS13-1-3-2021-06")
    assert handshake(context, V.TLSv1_3) == "TLSv1.3" and handshake(context, V.TLSv1_2) is None


def test_every_policy_builds_a_context_that_accepts_its_highest_version(certificate: Certificate) -> None:
    versions = dict(zip(ssl_policies.PROTOCOLS, ALL, strict=True))
    for policy in ssl_policies.POLICIES.values():
        context = server_context((certificate,), policy.name)
        assert handshake(context, versions[policy.maximum_protocol]) == policy.maximum_protocol, policy.name


def test_policy_table_is_aws_shaped() -> None:
    default = ssl_policies.POLICIES[DEFAULT_SSL_POLICY]
    assert default.protocols == ("TLSv1", "TLSv1.1", "TLSv1.2") and len(default.ciphers) == 18
    assert default.ciphers[0] == "ECDHE-ECDSA-AES128-GCM-SHA256" and default.ciphers[-1] == "AES256-SHA"
    tls13 = ssl_policies.POLICIES["ELBSecurityPolicy-TLS13-1-3-2021-06"]
    assert tls13.openssl_cipher_list() == "" and tls13.minimum_protocol == tls13.maximum_protocol == "TLSv1.3"
    for policy in ssl_policies.POLICIES.values():
        assert len(set(policy.ciphers)) == len(policy.ciphers), policy.name
        assert list(policy.protocols) == sorted(policy.protocols, key=ssl_policies.PROTOCOLS.index), policy.name
        assert any(c.startswith("TLS_") for c in policy.ciphers) == ("TLSv1.3" in policy.protocols), policy.name
