"""HealthCheckPath characters: the path goes into every probe's request line as it is.

A space, CR, LF, any other control character, DEL or a non-ASCII character is refused with
``ValidationError`` naming ``healthCheckPath`` and the character, on create and on modify,
and a refused modify leaves the current health check as it was. Visible ASCII (query
strings, percent escapes, punctuation) passes unchanged.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.errors import ElbError
from portside.core.lb.model import HealthCheck
from portside.core.lb.settings import health_check_from_params, modify_health_check

BAD = [
    ("/health\r\nX-Injected: 1", 0x0D, 7),
    ("/health\nHost: evil", 0x0A, 7),
    ("/a b", 0x20, 2),
    ("/tab\there", 0x09, 4),
    ("/nul\x00", 0x00, 4),
    ("/del\x7f", 0x7F, 4),
    ("/caf\u00e9", 0xE9, 4),
    ("/\u2028", 0x2028, 1),
]


@pytest.mark.parametrize(("path", "code", "index"), BAD)
def test_create_refuses_a_path_with_spaces_controls_or_non_ascii(path: str, code: int, index: int) -> None:
    with pytest.raises(ElbError) as info:
        health_check_from_params({"HealthCheckPath": path}, "HTTP")
    error = info.value
    assert error.code == "ValidationError" and error.status == 400
    assert "at 'healthCheckPath'" in error.message
    assert f"found U+{code:04X} at index {index}" in error.message
    assert "\r" not in error.message and "\n" not in error.message  # shown escaped, never raw


@pytest.mark.parametrize(("path", "code", "index"), BAD)
def test_a_refused_modify_changes_nothing(path: str, code: int, index: int) -> None:
    current = HealthCheck(path="/up", interval_s=10)
    with pytest.raises(ElbError) as info:
        modify_health_check(current, {"HealthCheckPath": path, "HealthCheckIntervalSeconds": 20}, "HTTP")
    assert "healthCheckPath" in info.value.message
    assert current == HealthCheck(path="/up", interval_s=10)


@pytest.mark.parametrize("path", ["/", "/health?full=1&x=%20y", "/a/b-c_d.e~f!$'()*+,;=:@", "/%E2%9C%93"])
def test_visible_ascii_paths_pass_unchanged(path: str) -> None:
    assert health_check_from_params({"HealthCheckPath": path}, "HTTP").path == path


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=100))
def test_any_visible_ascii_path_is_accepted(rest: str) -> None:
    assert health_check_from_params({"HealthCheckPath": "/" + rest}, "HTTPS").path == "/" + rest


@given(st.text(min_size=1, max_size=20), st.characters(blacklist_characters=[chr(c) for c in range(0x21, 0x7F)]))
def test_any_other_character_is_refused(rest: str, bad: str) -> None:
    with pytest.raises(ElbError) as info:
        health_check_from_params({"HealthCheckPath": "/" + rest[:10] + bad + rest[10:]}, "HTTP")
    assert info.value.code == "ValidationError" and "healthCheckPath" in info.value.message
