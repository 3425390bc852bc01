"""How each long-running verb (``server``, ``agent``, ``lb``) runs: on uvloop where it is installed,
until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on a new event loop (uvloop where it is installed)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.install()
        asyncio.run(main)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call from inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
