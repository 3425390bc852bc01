"""TLS on both sides of the proxy: termination (one SSLContext per certificate, chosen by SNI,
each with the listener's security policy) and the client context it speaks to HTTPS targets with."""

from __future__ import annotations

import ssl
import warnings
from typing import Any

from portside.core.lb import ssl_policies
from portside.core.lb.model import DEFAULT_SSL_POLICY, Certificate

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


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


def apply_policy(context: ssl.SSLContext, name: str) -> None:
    """Set ``context``'s protocol versions and TLS 1.2-and-earlier ciphers to the security policy
    ``name`` (an unknown name, which the API never stores, is the default policy).

    OpenSSL 3 negotiates TLS 1.0 and 1.1 only at security level 0, so a policy that allows them
    gets that level; its cipher list still limits the ciphers to the policy's own.
    """
    policy = ssl_policies.policy(name) or ssl_policies.POLICIES[DEFAULT_SSL_POLICY]
    # the widest range first, so setting either bound never crosses the other
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0 and 1.1; the policies that allow them are AWS's, chosen by name
        warnings.filterwarnings("ignore", "ssl.TLSVersion.TLSv1", DeprecationWarning)
        context.minimum_version = _VERSIONS[policy.minimum_protocol]
        context.maximum_version = _VERSIONS[policy.maximum_protocol]
    ciphers = policy.openssl_cipher_list()
    if ciphers:
        legacy = policy.minimum_protocol in ("TLSv1", "TLSv1.1")
        context.set_ciphers(ciphers + (":@SECLEVEL=0" if legacy else ""))


def _context(cert: Certificate, policy: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    apply_policy(context, policy)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return name == pattern


def server_context(certificates: tuple[Certificate, ...], policy: str = DEFAULT_SSL_POLICY) -> ssl.SSLContext:
    """The listener's context: the first certificate by default, the others by SNI server name,
    all with the security policy ``policy``."""
    default = _context(certificates[0], policy)
    by_name = [(names, _context(c, policy)) for c in certificates for names in [certificate_names(c.cert_path)]]

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
