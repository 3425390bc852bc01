"""TLS on both sides of the proxy: termination (one SSLContext per certificate, chosen by SNI)
and the client context it speaks to HTTPS targets with."""

from __future__ import annotations

import ssl
from typing import Any

from portside.core.lb.model import Certificate


def certificate_names(cert_path: str) -> list[str]:
    """The DNS names a PEM certificate covers (subjectAltName, else its common name)."""
    decoded: dict[str, Any] = ssl._ssl._test_decode_cert(cert_path)  # type: ignore[attr-defined]
    names = [value for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        for rdn in decoded.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    names.append(value)
    return [n.lower() for n in names]


def _context(cert: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # ELBSecurityPolicy-2016-08 allows 1.0+; we do not
    context.load_cert_chain(cert.cert_path, cert.key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return name == pattern


def server_context(certificates: tuple[Certificate, ...]) -> ssl.SSLContext:
    """The listener's context: the first certificate by default, the others by SNI server name."""
    default = _context(certificates[0])
    by_name = [(names, _context(c)) for c in certificates for names in [certificate_names(c.cert_path)]]

    def pick(sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if not server_name:
            return
        name = server_name.lower()
        for names, context in by_name:
            if any(_matches(name, pattern) for pattern in names):
                sock.context = context
                return

    default.sni_callback = pick
    return default


def target_context() -> ssl.SSLContext:
    """The client context for HTTPS targets and their health checks.

    As ALB does, the target's certificate is not verified (self-signed certificates and
    addresses that match no name are the rule behind a load balancer); the traffic is
    encrypted all the same, and never falls back to plaintext.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context
