"""portside.core.lb.stickiness: the sealed AWSALB cookie and ALB's Set-Cookie headers.

Hypothesis checks the round trip for arbitrary ARNs/keys, that flipping any bit of a cookie
or using another secret makes it undecodable, and that arbitrary text never raises.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.stickiness import (
    COOKIE_LIFETIME_S,
    LB_COOKIE,
    TG_COOKIE,
    CookieJar,
    cookie_from_header,
    decode_cookie,
    encode_cookie,
    set_cookie_headers,
)

SECRET = b"0123456789abcdef0123456789abcdef"
TG = "arn:aws:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef"
NOW = 1_700_000_000.0


def test_round_trip_and_expiry() -> None:
    value = encode_cookie(TG, "i-0abc:32768", NOW + 86400, SECRET)
    assert decode_cookie(value, SECRET, NOW) == (TG, "i-0abc:32768")
    assert decode_cookie(value, SECRET, NOW + 86399) == (TG, "i-0abc:32768")
    assert decode_cookie(value, SECRET, NOW + 86400) is None  # expired at the instant
    assert decode_cookie(value, b"another secret", NOW) is None
    assert decode_cookie(f'"{value}"', SECRET, NOW) == (TG, "i-0abc:32768")  # quoted cookie value


def test_cookie_is_opaque_cookie_safe_and_deterministic() -> None:
    value = encode_cookie(TG, "10.0.0.5:49153", NOW + 60, SECRET)
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert b"targetgroup" not in raw and b"10.0.0.5" not in raw
    assert value == encode_cookie(TG, "10.0.0.5:49153", NOW + 60, SECRET)
    assert value != encode_cookie(TG, "10.0.0.5:49154", NOW + 60, SECRET)


@pytest.mark.parametrize("value", ["", "x", "!!!!", "AQ", "A" * 200, "AWSALB=abc", "\u00e9t\u00e9"])
def test_garbage_is_ignored(value: str) -> None:
    assert decode_cookie(value, SECRET, NOW) is None


def test_overlong_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_cookie("a" * 70000, "k", NOW, SECRET)


@given(st.text(max_size=100), st.text(max_size=60), st.integers(0, 2**40))
def test_round_trip_any_text(arn: str, key: str, expires: int) -> None:
    value = encode_cookie(arn, key, expires, SECRET)
    assert decode_cookie(value, SECRET, expires - 1) == (arn, key)
    assert decode_cookie(value, SECRET, expires) is None


@given(st.text(min_size=1, max_size=40), st.data())
def test_any_bit_flip_is_detected(key: str, data: st.DataObject) -> None:
    raw = bytearray(base64.urlsafe_b64decode(_pad(encode_cookie(TG, key, NOW + 100, SECRET))))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(0, 7))
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert decode_cookie(tampered, SECRET, NOW) is None


@given(st.text(max_size=300))
def test_decode_never_raises(value: str) -> None:
    assert decode_cookie(value, SECRET, NOW) is None


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def test_set_cookie_headers_match_alb() -> None:
    now = 1551754398.0  # Tue, 05 Mar 2019 02:53:18 GMT (a captured response's Date header)
    assert set_cookie_headers("V", now) == (
        "AWSALB=V; Expires=Tue, 12 Mar 2019 02:53:18 GMT; Path=/",
        "AWSALBCORS=V; Expires=Tue, 12 Mar 2019 02:53:18 GMT; Path=/; SameSite=None; Secure",
    )
    assert COOKIE_LIFETIME_S == 604800
    tg = set_cookie_headers("V", now, name="AWSALBTG")
    assert tg[0].startswith("AWSALBTG=V; ") and tg[1].startswith("AWSALBTGCORS=V; ")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("AWSALB=abc; other=1", "abc"),
        ("other=1; AWSALBCORS=cors", "cors"),
        ("AWSALBCORS=cors; AWSALB=abc", "abc"),  # the plain cookie wins
        ("AWSALBTG=tg", None),
        ("XAWSALB=no", None),
        ("", None),
        (None, None),
        ("AWSALB=first; AWSALB=second", "first"),
    ],
)
def test_cookie_from_header(header: str | None, expected: str | None) -> None:
    assert cookie_from_header(header) == expected


def test_cookie_from_header_for_target_group_stickiness() -> None:
    assert cookie_from_header("AWSALB=a; AWSALBTG=t", name="AWSALBTG") == "t"
    assert cookie_from_header("AWSALBTGCORS=c", name="AWSALBTG") == "c"


# -- CookieJar: the memoised per-request path gives the same answers


def test_the_jar_seals_what_the_functions_seal_and_reuses_it_within_a_second() -> None:
    jar = CookieJar(SECRET)
    lines = jar.headers(LB_COOKIE, TG, "i-0abc:32768", 86400, NOW + 0.25)
    value = encode_cookie(TG, "i-0abc:32768", NOW + 86400, SECRET)
    expected = b"".join(b"Set-Cookie: " + h.encode() + b"\r\n" for h in set_cookie_headers(value, NOW, LB_COOKIE))
    assert lines == expected
    assert jar.headers(LB_COOKIE, TG, "i-0abc:32768", 86400, NOW + 0.75) is lines  # same second: built once
    later = jar.headers(LB_COOKIE, TG, "i-0abc:32768", 86400, NOW + 1.0)
    assert later != lines and b"AWSALB=" in later  # the next second pushes the expiry forward
    assert jar.headers(TG_COOKIE, TG, "i-0abc:32768", 86400, NOW + 1.0).startswith(b"Set-Cookie: AWSALBTG=")


def test_the_jar_opens_what_decode_opens_and_still_honours_expiry() -> None:
    jar = CookieJar(SECRET)
    value = encode_cookie(TG, "i-0abc:32768", NOW + 10, SECRET)
    assert jar.open(value, NOW) == decode_cookie(value, SECRET, NOW) == (TG, "i-0abc:32768")
    assert jar.open(value, NOW + 9.9) == (TG, "i-0abc:32768")  # from the cache
    assert jar.open(value, NOW + 10) is None  # expired, though cached
    tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert jar.open(tampered, NOW) is None and tampered not in jar._opened
    assert CookieJar(b"another secret").open(value, NOW) is None


def test_the_jar_stays_bounded() -> None:
    jar = CookieJar(SECRET)
    for i in range(CookieJar.MAX_ENTRIES + 5):
        jar.open(encode_cookie(TG, f"i-{i}:1", NOW + 10, SECRET), NOW)
    assert len(jar._opened) <= CookieJar.MAX_ENTRIES


def test_the_jar_reads_a_raw_cookie_header_like_cookie_from_header_then_decode() -> None:
    jar = CookieJar(SECRET)
    value = encode_cookie(TG, "i-0abc:32768", NOW + 10, SECRET)
    header = f"theme=dark; AWSALBCORS={value}; x=1".encode()
    assert jar.open_header(header, LB_COOKIE, NOW) == (TG, "i-0abc:32768")
    assert jar.open_header(header, LB_COOKIE, NOW + 10) is None  # expired: remembered, still checked
    assert jar.open_header(header, TG_COOKIE, NOW) is None  # another cookie name
    assert jar.open_header(b"AWSALB=garbage", LB_COOKIE, NOW) is None
    assert jar.open_header(b"AWSALB=garbage", LB_COOKIE, NOW) is None  # remembered as holding nothing
