"""Which HTTP requests may drive the API at all: the Host they name and the Origin they come from.

Theory of operation
-------------------
The API can start containers with ``privileged`` and host bind mounts, so whoever drives it is
root on the host. Signatures keep out clients without a key, but on loopback any key is
accepted, and two browser tricks reach loopback from a web page on another site:

- *Cross-site requests.* A page on ``http://evil.example`` can POST a form (or ``fetch`` with
  ``mode: "no-cors"``) to ``http://127.0.0.1:7070/``. Browsers add an ``Origin`` header to every
  such request, naming the page's site. The API is driven by SDKs and the CLI, which send no
  ``Origin`` at all, so a request whose ``Origin`` is anything but the API's own origin is
  refused (:func:`origin_problem`).
- *DNS rebinding.* The page's own name, ``rebind.evil.example``, is made to resolve to
  ``127.0.0.1``; the browser then thinks the API is same-origin with the page. Its requests
  still carry ``Host: rebind.evil.example``, so a request whose Host does not name the API is
  refused (:func:`host_problem`). IP literals cannot be rebound: a Host that is the address the
  connection arrived on is the API's own address whatever name a user typed.

The names the API answers to:

- the address it listens on (when it listens on one address, not ``0.0.0.0`` / ``::``);
- the local address the connection arrived on (what a client that dialled an IP sends);
- the names given with ``--api-host NAME`` (a DNS name users reach the API by);
- when the connection arrived on loopback: ``localhost``, ``127.0.0.1`` and ``::1``.

The port in Host is not compared: a rebinding page must use the API's port to reach it at
all, and a port-forward or a TLS terminator in front may change it.

Everything here is pure: the caller passes the headers and the connection's local address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["LOOPBACK_NAMES", "ApiIdentity", "check_api_host", "host_name", "host_problem", "origin_problem"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class ApiIdentity:
    """How the API is reached: ``scheme`` (http/https), its listen address and ``--api-host`` names."""

    scheme: str
    listen_host: str
    names: tuple[str, ...] = ()

    def accepted_names(self, local_address: str) -> list[str]:
        """Every host name a request arriving on ``local_address`` may put in its Host header."""
        names: list[str] = []
        if self.listen_host not in _WILDCARDS:
            names.append(_normalise(self.listen_host))
        if local_address:
            names.append(_normalise(local_address))
        names.extend(_normalise(name) for name in self.names)
        if _is_loopback(local_address) or _is_loopback(self.listen_host):
            names.extend(LOOPBACK_NAMES)
        return list(dict.fromkeys(names))


def host_name(host_header: str) -> str | None:
    """The name part of a Host header value (IPv6 without brackets, lower case), None if malformed."""
    value = host_header.strip()
    if not value:
        return None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return _normalise(name)
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    if not name or any(ch.isspace() or ch in "/@\\" for ch in name):
        return None
    return _normalise(name)


def check_api_host(name: str) -> str:
    """A ``--api-host`` value, normalised; ValueError naming the flag unless it is a bare host name or IP.

    A port would never match (ports are not compared), so it is refused rather than ignored.
    """
    bare = name.strip()
    inner = bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare
    if _is_ip(inner):
        return _normalise(inner)
    if not inner or ":" in inner or host_name(inner) is None or any(ch in inner for ch in "*?"):
        raise ValueError(f"--api-host must be a host name or IP address without a port or wildcard, got {name!r}")
    return _normalise(inner)


def host_problem(identity: ApiIdentity, host_header: str | None, local_address: str) -> str | None:
    """Why this Host header does not name the API, or None when it does."""
    if host_header is None:
        return "The request has no Host header; it must name this API."
    name = host_name(host_header)
    accepted = identity.accepted_names(local_address)
    if name is None or name not in accepted:
        return (
            f"Host header '{host_header}' does not name this API (accepted: {', '.join(accepted)}; "
            "add a name with --api-host NAME)."
        )
    return None


def origin_problem(identity: ApiIdentity, origin: str | None, host_header: str | None) -> str | None:
    """Why a request with this Origin header is refused, or None (no Origin, or the API's own)."""
    if origin is None:
        return None  # SDKs, the CLI and curl send none; browsers always do for cross-site POSTs
    own = f"{identity.scheme}://{(host_header or '').strip()}".lower()
    if origin.strip().lower() != own:
        return (
            f"Origin '{origin}' is not this API's own origin ({own}): "
            "the API refuses requests that web pages on other sites make."
        )
    return None


def _normalise(name: str) -> str:
    name = name.strip().strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
