"""Duration-based stickiness: the ``AWSALB`` cookie and the headers that set it.

Theory of operation
-------------------
When ``stickiness.enabled`` is true (type ``lb_cookie``) the balancer pins a client to the
target it first picked by handing out a cookie naming that target. ALB's cookie is opaque and
encrypted; ours is too, so clients learn nothing about target groups, instance ids or ports:

    value = base64url( version(1) || tag(16) || ciphertext )

    plaintext  = expires_at(8, big-endian seconds) || len(arn)(2) || arn || len(key)(2) || key
    tag        = HMAC-SHA256(k_mac, version || plaintext)[:16]
    ciphertext = plaintext XOR HMAC-SHA256-CTR(k_enc, tag)     (keystream blocks HMAC(k_enc, tag || i))
    k_mac, k_enc = HMAC-SHA256(secret, "portside/awsalb/mac" | ".../enc")

That is a deterministic authenticated encryption (the synthetic-IV construction, with HMAC as
the PRF): any change to the value fails the tag check, and equal inputs give equal cookies,
so there is no randomness and the module stays pure. ``expires_at`` is when the *stickiness*
ends (``stickiness.lb_cookie.duration_seconds`` after the response); the cookie itself gets
ALB's fixed, non-configurable 7-day ``Expires`` and is re-issued on every response, which
also pushes ``expires_at`` forward (spec alb.md §1.6).

ALB sends two cookies with the same value (observed responses, e.g.
``AWSALB=…; Expires=Tue, 12 Mar 2019 02:53:18 GMT; Path=/``):

    Set-Cookie: AWSALB=<v>; Expires=<now + 7 days, IMF-fixdate>; Path=/
    Set-Cookie: AWSALBCORS=<v>; Expires=<same>; Path=/; SameSite=None; Secure

and reads either (``AWSALBCORS`` is what cross-site requests carry). Weighted forward actions
with group stickiness use ``AWSALBTG`` / ``AWSALBTGCORS`` the same way. A cookie that does not
decode, has expired, or names a target that is no longer healthy is ignored: the balancer
picks again and rewrites it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import struct
from email.utils import formatdate

__all__ = [
    "COOKIE_LIFETIME_S",
    "CookieJar",
    "LB_COOKIE",
    "TG_COOKIE",
    "cookie_from_header",
    "decode_cookie",
    "encode_cookie",
    "set_cookie_headers",
]

LB_COOKIE = "AWSALB"
TG_COOKIE = "AWSALBTG"
COOKIE_LIFETIME_S = 7 * 24 * 3600  # ALB's own cookie expiry: 7 days, not configurable

_VERSION = 1
_TAG_LEN = 16
_MAX_FIELD = 0xFFFF
# Keystream block counters, packed once: a cookie never needs more than 2 * 65535 + 12 bytes.
_BLOCK_INDEX = [struct.pack(">I", i) for i in range((2 * _MAX_FIELD + 12 + 31) // 32)]


@functools.lru_cache(maxsize=16)
def _keys(secret: bytes) -> tuple[bytes, bytes]:
    mac = hmac.digest(secret, b"portside/awsalb/mac", "sha256")
    enc = hmac.digest(secret, b"portside/awsalb/enc", "sha256")
    return mac, enc


def _keystream(key: bytes, tag: bytes, length: int) -> bytes:
    # hmac.digest is the one-shot C path: several times cheaper than hmac.new(...).digest().
    blocks = [hmac.digest(key, tag + _BLOCK_INDEX[i], "sha256") for i in range((length + 31) // 32)]
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def encode_cookie(target_group_arn: str, target_key: str, expires_at: float, secret: bytes) -> str:
    """Seal a stickiness decision into a cookie value.

    :param target_key: the caller's identity for the target (e.g. ``"i-0abc:32768"``).
    :param expires_at: when stickiness ends (seconds since the epoch; truncated to whole seconds).
    :param secret: the balancer's cookie key (keep it stable across restarts to keep sessions).
    Returns: an opaque, cookie-safe base64url string (no padding).
    Raises: ValueError if the ARN or key is longer than 65535 bytes in UTF-8.
    """
    arn, key = target_group_arn.encode(), target_key.encode()
    if len(arn) > _MAX_FIELD or len(key) > _MAX_FIELD:
        raise ValueError("target group ARN or target key too long for a stickiness cookie")
    plain = (
        struct.pack(">q", int(expires_at))
        + struct.pack(">H", len(arn))
        + arn
        + struct.pack(">H", len(key))
        + key
    )
    mac_key, enc_key = _keys(secret)
    version = bytes([_VERSION])
    tag = hmac.digest(mac_key, version + plain, "sha256")[:_TAG_LEN]
    sealed = version + tag + _xor(plain, _keystream(enc_key, tag, len(plain)))
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def decode_cookie(value: str, secret: bytes, now: float) -> tuple[str, str] | None:
    """Open a stickiness cookie.

    Returns: ``(target_group_arn, target_key)``, or None when the value is malformed, was not
        made with ``secret``, was altered in any way, or ``now`` is at or past its expiry.
    Raises: nothing.
    """
    opened = _open(value, secret)
    if opened is None or now >= opened[0]:
        return None
    return opened[1], opened[2]


def _open(value: str, secret: bytes) -> tuple[int, str, str] | None:
    """``(expires_at, target_group_arn, target_key)`` of an authentic cookie, expired or not."""
    try:
        text = value.strip().strip('"')
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 1 + _TAG_LEN + 12 or raw[0] != _VERSION:
        return None
    tag, body = raw[1 : 1 + _TAG_LEN], raw[1 + _TAG_LEN :]
    mac_key, enc_key = _keys(secret)
    plain = _xor(body, _keystream(enc_key, tag, len(body)))
    expected = hmac.digest(mac_key, raw[:1] + plain, "sha256")[:_TAG_LEN]
    if not hmac.compare_digest(tag, expected):
        return None
    try:
        (expires_at,) = struct.unpack_from(">q", plain, 0)
        (arn_len,) = struct.unpack_from(">H", plain, 8)
        arn = plain[10 : 10 + arn_len]
        (key_len,) = struct.unpack_from(">H", plain, 10 + arn_len)
        key = plain[12 + arn_len : 12 + arn_len + key_len]
        if 12 + arn_len + key_len != len(plain) or len(arn) != arn_len:
            return None
        return expires_at, arn.decode(), key.decode()
    except (struct.error, UnicodeDecodeError):
        return None


def set_cookie_headers(value: str, now: float, name: str = LB_COOKIE) -> tuple[str, str]:
    """The two ``Set-Cookie`` header values ALB sends for a stickiness cookie.

    :param name: ``AWSALB`` (target stickiness) or ``AWSALBTG`` (target group stickiness).
    Returns: ``("<name>=<v>; Expires=<now+7d>; Path=/",
        "<name>CORS=<v>; Expires=<now+7d>; Path=/; SameSite=None; Secure")``.
    """
    expires = formatdate(now + COOKIE_LIFETIME_S, usegmt=True)
    return (
        f"{name}={value}; Expires={expires}; Path=/",
        f"{name}CORS={value}; Expires={expires}; Path=/; SameSite=None; Secure",
    )


def cookie_from_header(cookie_header: str | None, name: str = LB_COOKIE) -> str | None:
    """Find the stickiness cookie in a request's ``Cookie`` header.

    Returns: the value of ``<name>``, else of ``<name>CORS``, else None.
    """
    if not cookie_header:
        return None
    found: dict[str, str] = {}
    cors = name + "CORS"
    for part in cookie_header.split(";"):
        key, eq, val = part.strip().partition("=")
        if eq and key in (name, cors) and key not in found:
            found[key] = val.strip()
    return found.get(name) or found.get(cors)


class CookieJar:
    """The balancer's per-request stickiness work, memoised; every answer equals the functions above.

    ``headers`` seals a decision into its two ``Set-Cookie`` lines. Expiries are whole seconds,
    so within one second every response pinning the same target carries the same bytes: they
    are built once per (cookie name, target group, target, duration) and second. ``open``
    remembers the cookies it verified (only those: a forged value never enters), so a client
    sending its cookie on every request costs a dict lookup plus the expiry check.
    """

    MAX_ENTRIES = 4096

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._second = -1
        self._sealed: dict[tuple[str, str, str, float], bytes] = {}
        self._opened: dict[str, tuple[int, str, str]] = {}
        self._headers: dict[tuple[str, bytes], str | None] = {}  # a raw Cookie header -> the value in it

    def headers(self, name: str, target_group_arn: str, target_key: str, duration_s: float, wall: float) -> bytes:
        second = int(wall)
        if second != self._second:
            self._second = second
            self._sealed = {}
        key = (name, target_group_arn, target_key, duration_s)
        lines = self._sealed.get(key)
        if lines is None:
            value = encode_cookie(target_group_arn, target_key, second + duration_s, self.secret)
            lines = b"".join(b"Set-Cookie: " + h.encode() + b"\r\n" for h in set_cookie_headers(value, second, name))
            if len(self._sealed) < self.MAX_ENTRIES:
                self._sealed[key] = lines
        return lines

    def open_header(self, cookie_header: bytes, name: str, now: float) -> tuple[str, str] | None:
        """``open`` for the cookie ``name`` (or ``<name>CORS``) in a raw ``Cookie`` header.

        A client sends the same header on every request: the value found in it is remembered by
        the header's bytes, so the header is parsed once.
        """
        key = (name, cookie_header)
        if key in self._headers:
            value = self._headers[key]
        else:
            value = cookie_from_header(cookie_header.decode("latin-1"), name)
            if len(self._headers) >= self.MAX_ENTRIES:
                self._headers.clear()
            self._headers[key] = value
        return self.open(value, now) if value else None

    def open(self, value: str, now: float) -> tuple[str, str] | None:
        known = self._opened.get(value)
        if known is None:
            known = _open(value, self.secret)
            if known is None:
                return None
            if len(self._opened) >= self.MAX_ENTRIES:
                self._opened.clear()
            self._opened[value] = known
        if now >= known[0]:
            return None
        return known[1], known[2]

