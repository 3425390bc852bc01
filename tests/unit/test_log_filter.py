"""FilterLogEvents' filter patterns over unstructured events."""

from __future__ import annotations

import pytest

from portside.core.log_filter import UnsupportedPattern, parse


@pytest.mark.parametrize(
    ("pattern", "message", "matches"),
    [
        ("", "anything", True),
        ("ERROR", "an ERROR here", True),
        ("ERROR", "an error here", False),  # case-sensitive, as CloudWatch
        ("ERROR disk", "ERROR: disk full", True),
        ("ERROR disk", "ERROR: memory", False),
        ('"disk full"', "ERROR: disk full", True),
        ('"disk full"', "full disk", False),
        ('"say \\"hi\\""', 'they say "hi"', True),
        ("ERROR -retry", "ERROR will retry", False),
        ("ERROR -retry", "ERROR fatal", True),
        ('-"not me"', "not me at all", False),
        ("?WARN ?ERROR", "WARN: slow", True),
        ("?WARN ?ERROR", "INFO: fine", False),
        ("GET ?500 ?503", "GET / 503", True),
        ("GET ?500 ?503", "POST / 503", False),
    ],
)
def test_patterns(pattern: str, message: str, matches: bool) -> None:
    assert parse(pattern).matches(message) is matches


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        ('{ $.level = "ERROR" }', "JSON"),
        ("[ip, user, ts]", "space-delimited"),
        ("%ERR[0-9]+%", "regular-expression"),
        ('"open', "not closed"),
        ("ERROR -", "followed by a term"),
        ('""', "empty"),
        ('ab"c', "quote"),
    ],
)
def test_what_is_not_implemented_is_refused_by_name(pattern: str, named: str) -> None:
    with pytest.raises(UnsupportedPattern, match=named):
        parse(pattern)
