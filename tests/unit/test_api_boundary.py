"""Which Host and Origin headers may drive the API (core/api_boundary.py), as tables."""

from __future__ import annotations

import pytest

from portside.core.api_boundary import ApiIdentity, check_api_host, host_name, host_problem, origin_problem

LOOPBACK = ApiIdentity("http", "127.0.0.1")
EVERYWHERE = ApiIdentity("http", "0.0.0.0", ("api.example.com",))
ONE_ADDRESS = ApiIdentity("https", "10.1.2.3", ("Portside.Internal.",))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("127.0.0.1:7070", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:7070", "::1"),
        ("[::1]", "::1"),
        ("api.example.com.:443", "api.example.com"),
        ("", None),
        ("a:b", None),
        ("[::1", None),
        ("[::1]x", None),
        ("user@host", None),
        ("a b", None),
    ],
)
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize(
    ("identity", "host", "local", "allowed"),
    [
        (LOOPBACK, "127.0.0.1:7070", "127.0.0.1", True),
        (LOOPBACK, "localhost:7070", "127.0.0.1", True),
        (LOOPBACK, "[::1]:7070", "127.0.0.1", True),
        (LOOPBACK, "127.0.0.1", "127.0.0.1", True),  # no port: a TLS terminator or port-forward in front
        (LOOPBACK, "rebind.evil.example:7070", "127.0.0.1", False),  # DNS rebinding
        (LOOPBACK, "localhost.evil.example", "127.0.0.1", False),
        (LOOPBACK, "10.0.0.1:7070", "127.0.0.1", False),
        (EVERYWHERE, "192.168.5.7:7070", "192.168.5.7", True),  # the address the client dialled
        (EVERYWHERE, "192.168.5.8:7070", "192.168.5.7", False),
        (EVERYWHERE, "API.example.com:7070", "192.168.5.7", True),  # --api-host, any case
        (EVERYWHERE, "localhost:7070", "192.168.5.7", False),  # localhost only on loopback
        (EVERYWHERE, "localhost:7070", "127.0.0.1", True),
        (EVERYWHERE, "rebind.evil.example", "127.0.0.1", False),
        (ONE_ADDRESS, "10.1.2.3", "10.1.2.3", True),
        (ONE_ADDRESS, "portside.internal", "10.1.2.3", True),
        (ONE_ADDRESS, "127.0.0.1", "10.1.2.3", False),
        (LOOPBACK, None, "127.0.0.1", False),
        (LOOPBACK, "", "127.0.0.1", False),
    ],
)
def test_host_problem(identity: ApiIdentity, host: str | None, local: str, allowed: bool) -> None:
    problem = host_problem(identity, host, local)
    assert (problem is None) == allowed
    if problem is not None:
        assert "Host header" in problem
        if host:
            assert f"'{host}'" in problem and "--api-host" in problem


@pytest.mark.parametrize(
    ("identity", "origin", "host", "allowed"),
    [
        (LOOPBACK, None, "127.0.0.1:7070", True),  # SDKs and the CLI send no Origin
        (LOOPBACK, "http://127.0.0.1:7070", "127.0.0.1:7070", True),
        (LOOPBACK, "HTTP://127.0.0.1:7070", "127.0.0.1:7070", True),
        (LOOPBACK, "http://evil.example", "127.0.0.1:7070", False),
        (LOOPBACK, "null", "127.0.0.1:7070", False),  # sandboxed frames and file:// pages
        (LOOPBACK, "http://localhost:7070", "127.0.0.1:7070", False),  # another origin, same machine
        (LOOPBACK, "https://127.0.0.1:7070", "127.0.0.1:7070", False),
        (ONE_ADDRESS, "https://10.1.2.3:7070", "10.1.2.3:7070", True),
        (ONE_ADDRESS, "http://10.1.2.3:7070", "10.1.2.3:7070", False),
    ],
)
def test_origin_problem(identity: ApiIdentity, origin: str | None, host: str, allowed: bool) -> None:
    problem = origin_problem(identity, origin, host)
    assert (problem is None) == allowed
    if problem is not None:
        assert f"Origin '{origin}'" in problem


@pytest.mark.parametrize(
    ("name", "normalised"),
    [("Portside.Example.com", "portside.example.com"), ("10.0.0.5", "10.0.0.5"), ("[::1]", "::1"), ("::1", "::1"),
     ("portside.example.com:443", None), ("", None), ("*.example.com", None), ("a b", None), ("http://x", None)],
)
def test_check_api_host(name: str, normalised: str | None) -> None:
    if normalised is None:
        with pytest.raises(ValueError, match="--api-host must be a host name or IP address"):
            check_api_host(name)
    else:
        assert check_api_host(name) == normalised
