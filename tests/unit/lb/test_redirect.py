"""portside.core.lb.redirect: the Location of a redirect action, placeholders as ALB applies them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.model import Action
from portside.core.lb.redirect import redirect_location


def redirect(**fields: str) -> Action:
    return Action("redirect", **{f"redirect_{k}": v for k, v in fields.items()})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "request_", "expected"),
    [
        # the classic HTTP -> HTTPS redirect: 443 is the https default, so it is omitted
        (
            redirect(protocol="HTTPS", port="443"),
            ("http", "example.com", 80, "/a/b", "x=1"),
            "https://example.com/a/b?x=1",
        ),
        # defaults reproduce the request (default port omitted)
        (redirect(), ("http", "example.com", 80, "/", ""), "http://example.com/"),
        (redirect(), ("https", "example.com", 443, "/p", "q"), "https://example.com/p?q"),
        # non-default ports are kept
        (
            redirect(protocol="HTTPS", port="8443"),
            ("http", "example.com", 8080, "/", ""),
            "https://example.com:8443/",
        ),
        (
            redirect(host="new.example.com"),
            ("http", "old.example.com", 8080, "/x", ""),
            "http://new.example.com:8080/x",
        ),
        # #{path} has no leading slash
        (redirect(path="/new/#{path}"), ("http", "h.com", 80, "/old/page", ""), "http://h.com/new/old/page"),
        (redirect(path="/#{path}/index.html"), ("http", "h.com", 80, "/", ""), "http://h.com//index.html"),
        # every keyword in every component
        (
            redirect(
                host="#{host}.cdn.net", path="/#{host}/#{port}/#{path}", query="from=#{protocol}&#{query}"
            ),
            ("http", "site.org", 8080, "/p", "a=1"),
            "http://site.org.cdn.net:8080/site.org/8080/p?from=http&a=1",
        ),
        # query: empty result writes no "?", a literal query replaces it
        (
            redirect(protocol="HTTPS", port="443", query=""),
            ("http", "h.com", 80, "/", "drop=me"),
            "https://h.com/",
        ),
        (
            redirect(protocol="HTTPS", port="443", query="#{query}&v=2"),
            ("http", "h.com", 80, "/", ""),
            "https://h.com/?&v=2",
        ),
        # #{port} keeps the listener port even when the protocol changes (why ALB configs set Port=443)
        (redirect(protocol="HTTPS"), ("http", "h.com", 80, "/", ""), "https://h.com:80/"),
        # the Host header's port is not part of #{host}
        (redirect(protocol="HTTPS"), ("http", "h.com:8080", 8080, "/", ""), "https://h.com:8080/"),
        (
            redirect(protocol="HTTPS", port="443"),
            ("http", "[2001:db8::1]:80", 80, "/", ""),
            "https://[2001:db8::1]/",
        ),
        # raw path and query pass through without re-encoding
        (
            redirect(protocol="HTTPS", port="443"),
            ("http", "h.com", 80, "/a%20b", "q=%2F"),
            "https://h.com/a%20b?q=%2F",
        ),
        # a request value containing a keyword is not expanded again
        (redirect(host="x.com"), ("http", "h.com", 80, "/#{host}", ""), "http://x.com/#{host}"),
        # protocol case; http on 443 is not a default port
        (redirect(protocol="HTTP"), ("HTTPS", "h.com", 443, "/", ""), "http://h.com:443/"),
    ],
)
def test_redirect_location(action: Action, request_: tuple[str, str, int, str, str], expected: str) -> None:
    assert redirect_location(action, *request_) == expected


@given(
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z]{1,8}\.[a-z]{2,3}", fullmatch=True),
    st.integers(1, 65535),
    st.from_regex(r"(/[a-z0-9]{0,5}){1,3}", fullmatch=True),
    st.from_regex(r"([a-z]=[0-9])?", fullmatch=True),
)
def test_default_action_reproduces_the_request(
    scheme: str, host: str, port: int, path: str, query: str
) -> None:
    url = redirect_location(Action("redirect"), scheme, host, port, path, query)
    default = {"http": 80, "https": 443}[scheme] == port
    expected = f"{scheme}://{host}{'' if default else f':{port}'}{path}{'?' + query if query else ''}"
    assert url == expected
