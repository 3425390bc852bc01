"""AWS's predefined security policies for HTTPS listeners: protocols and ciphers, as DescribeSSLPolicies lists them.

A policy is what an HTTPS listener's ``SslPolicy`` names. The proxy applies it to the listener's
TLS context (``proxy/tls.py``): the lowest and highest protocol version of the policy, and its
TLS 1.2-and-earlier ciphers as the OpenSSL cipher list, in the policy's order of preference.
TLS 1.3 cipher suites cannot be chosen through Python's ``ssl`` module; OpenSSL offers the same
three every AWS TLS 1.3 policy lists.

The FIPS and post-quantum (PQ) policies are not here: portside's OpenSSL is not a FIPS module,
and a hybrid ML-KEM key exchange is not what it offers, so naming them is ``SSLPolicyNotFound``
rather than a promise portside would not keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from portside.core.lb.model import DEFAULT_SSL_POLICY

# Protocol names as AWS lists them, lowest first.
PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

_TLS13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_ECDHE_128 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256",
)
_ECDHE_128_SHA1 = ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
_ECDHE_256 = (
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384",
)
_ECDHE_256_SHA1 = ("ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA")
_ECDHE_GCM = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
)
_RSA_SHA2 = ("AES128-GCM-SHA256", "AES128-SHA256", "AES256-GCM-SHA384", "AES256-SHA256")
_RSA_ALL = ("AES128-GCM-SHA256", "AES128-SHA256", "AES128-SHA", "AES256-GCM-SHA384", "AES256-SHA256", "AES256-SHA")
_LEGACY = (*_ECDHE_128, *_ECDHE_128_SHA1, *_ECDHE_256, *_ECDHE_256_SHA1, *_RSA_ALL)
_FS = (*_ECDHE_128, *_ECDHE_128_SHA1, *_ECDHE_256, *_ECDHE_256_SHA1)


@dataclass(frozen=True)
class SslPolicy:
    name: str
    protocols: tuple[str, ...]  # from PROTOCOLS, lowest first
    ciphers: tuple[str, ...]  # in order of preference; TLS_* are TLS 1.3 suites, the rest OpenSSL names

    @property
    def minimum_protocol(self) -> str:
        return self.protocols[0]

    @property
    def maximum_protocol(self) -> str:
        return self.protocols[-1]

    def openssl_cipher_list(self) -> str:
        """The TLS 1.2-and-earlier ciphers as an OpenSSL cipher list ("" for a TLS 1.3-only policy)."""
        return ":".join(c for c in self.ciphers if not c.startswith("TLS_"))


def _policy(name: str, protocols: tuple[str, ...], ciphers: tuple[str, ...]) -> SslPolicy:
    return SslPolicy(name, protocols, ciphers)


_ALL_LEGACY = ("TLSv1", "TLSv1.1", "TLSv1.2")

#: Every policy by name, in the order DescribeSSLPolicies lists them.
POLICIES: dict[str, SslPolicy] = {
    p.name: p
    for p in (
        _policy(DEFAULT_SSL_POLICY, _ALL_LEGACY, _LEGACY),
        _policy("ELBSecurityPolicy-TLS13-1-2-2021-06", ("TLSv1.2", "TLSv1.3"), (*_TLS13, *_ECDHE_128, *_ECDHE_256)),
        _policy("ELBSecurityPolicy-TLS13-1-2-Res-2021-06", ("TLSv1.2", "TLSv1.3"), (*_TLS13, *_ECDHE_GCM)),
        _policy(
            "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", ("TLSv1.2", "TLSv1.3"),
            (*_TLS13, *_ECDHE_128, *_ECDHE_256, *_RSA_SHA2),
        ),
        _policy(
            "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", ("TLSv1.2", "TLSv1.3"),
            (*_TLS13, *_ECDHE_128, *_ECDHE_128_SHA1, *_ECDHE_256, "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
             *_RSA_ALL),
        ),
        _policy("ELBSecurityPolicy-TLS13-1-1-2021-06", ("TLSv1.1", "TLSv1.2", "TLSv1.3"), (*_TLS13, *_LEGACY)),
        _policy("ELBSecurityPolicy-TLS13-1-0-2021-06", PROTOCOLS, (*_TLS13, *_LEGACY)),
        _policy("ELBSecurityPolicy-TLS13-1-3-2021-06", ("TLSv1.3",), _TLS13),
        _policy("ELBSecurityPolicy-TLS-1-2-2017-01", ("TLSv1.2",), (*_ECDHE_128, *_ECDHE_256, *_RSA_SHA2)),
        _policy("ELBSecurityPolicy-TLS-1-1-2017-01", ("TLSv1.1", "TLSv1.2"), _LEGACY),
        _policy("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", ("TLSv1.2",), _LEGACY),
        _policy("ELBSecurityPolicy-FS-2018-06", _ALL_LEGACY, _FS),
        _policy("ELBSecurityPolicy-2015-05", _ALL_LEGACY, _LEGACY),
        _policy("ELBSecurityPolicy-TLS-1-0-2015-04", _ALL_LEGACY, (*_LEGACY, "DES-CBC3-SHA")),
        _policy("ELBSecurityPolicy-FS-1-2-Res-2019-08", ("TLSv1.2",), (*_ECDHE_128, *_ECDHE_256)),
        _policy("ELBSecurityPolicy-FS-1-1-2019-08", ("TLSv1.1", "TLSv1.2"), _FS),
        _policy("ELBSecurityPolicy-FS-1-2-2019-08", ("TLSv1.2",), _FS),
        _policy("ELBSecurityPolicy-FS-1-2-Res-2020-10", ("TLSv1.2",), _ECDHE_GCM),
    )
}

#: The load balancer types every policy here serves (DescribeSSLPolicies' ``SupportedLoadBalancerTypes``).
SUPPORTED_LOAD_BALANCER_TYPES = ("application", "network")


def policy(name: str) -> SslPolicy | None:
    return POLICIES.get(name)
