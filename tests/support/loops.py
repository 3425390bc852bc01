"""Running a proxy scenario in this process on a chosen event loop: asyncio's, or uvloop (the server's)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvloop

T = TypeVar("T")

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run_on(loop: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` to completion on a fresh loop of kind ``loop``, then close the loop."""

    async def wrapper() -> T:
        return await main()

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(wrapper())


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (without blocking the loop) until ``check()`` is true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.05)
