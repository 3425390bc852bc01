"""Crash points for the restart tests.

``PORTSIDE_CRASH_AT=NAME:N`` makes the process exit abruptly (``os._exit``, like
``kill -9``: no cleanup, no flush) the N-th time it passes crash point NAME. Unset,
a crash point costs one dictionary lookup. This exists so the kill-and-restart
tests can stop the server at every step of a RunTask deterministically.
"""

from __future__ import annotations

import os

_spec = os.environ.get("PORTSIDE_CRASH_AT", "")
_target, _, _count = _spec.partition(":")
_remaining = {_target: int(_count or 1)} if _target else {}


def crash_point(name: str) -> None:
    if name in _remaining:
        _remaining[name] -= 1
        if _remaining[name] <= 0:
            os._exit(137)
