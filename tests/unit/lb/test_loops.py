"""Targets and listeners that would loop into portside (core/lb/loops.py), as tables."""

from __future__ import annotations

import pytest

from portside.core.lb.loops import OwnEndpoints, is_always_local, listener_loop, target_loop

OWN = OwnEndpoints(("127.0.0.1", 7070), {8080: "arn:listener/web"})


@pytest.mark.parametrize(
    ("address", "local"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("0.0.0.0", True), ("::", True),
     ("::ffff:127.0.0.1", True), ("10.0.0.1", False), ("example.com", False), ("", False)],
)
def test_always_local(address: str, local: bool) -> None:
    assert is_always_local(address) is local


@pytest.mark.parametrize(
    ("target", "address", "port", "is_local", "says"),
    [
        ("127.0.0.1", "127.0.0.1", 7070, True, "the portside API's own address and port (127.0.0.1:7070)"),
        ("172.17.0.1", "172.17.0.1", 7070, True, "Target 172.17.0.1 port 7070 is the portside API"),
        ("i-0123", "127.0.0.1", 7070, True, "Target i-0123 (127.0.0.1) port 7070"),
        ("127.0.0.1", "127.0.0.1", 8080, True, "portside's own listener arn:listener/web"),
        ("10.9.9.9", "10.9.9.9", 7070, False, None),  # another host's port 7070 is not our API
        ("127.0.0.1", "127.0.0.1", 9000, True, None),
    ],
)
def test_target_loop(target: str, address: str, port: int, is_local: bool, says: str | None) -> None:
    problem = target_loop(target, address, port, is_local, OWN)
    if says is None:
        assert problem is None
    else:
        assert problem is not None and says in problem


def test_listener_loop() -> None:
    assert listener_loop(9000, OWN, {}) is None
    api = listener_loop(7070, OWN, {})
    assert api is not None and "Port 7070 is the portside API's own port (127.0.0.1:7070)" in api
    looped = listener_loop(9000, OWN, {"arn:tg/a": "127.0.0.1"})
    assert looped is not None and "target 127.0.0.1" in looped and "arn:tg/a" in looped
    assert listener_loop(7070, OwnEndpoints(None), {}) is None  # no API address known: nothing to compare
