"""A loop that does one round of work every period until cancelled, and outlives a failed round.

``Periodic`` is the running part of a controller made of rounds (liveness, scaling, alarms, ...):
``round()`` every period from ``start()`` until ``close()``. The drained-target sweeper calls ``every``. A round refused
for a known reason (a ``PortsideError``: the database away, this replica no longer leading) is said
in one line; anything else is logged with its traceback. Either way the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from portside.errors import PortsideError


async def every(period_s: float, work: Callable[[], object], what: str, log: logging.Logger) -> None:
    """Sleep ``period_s``, then ``work()``; forever."""
    while True:
        await asyncio.sleep(period_s)
        try:
            work()
        except PortsideError as exc:
            log.warning("%s skipped: %s", what, exc.message)
        except Exception:
            log.exception("%s failed", what)


class Periodic:
    """A controller whose work is one ``round()`` every ``period_s``, from ``start()`` until ``close()``."""

    def __init__(self, period_s: float, what: str, log: logging.Logger) -> None:
        self.period_s = period_s
        self._what = what
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def round(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.ensure_future(every(self.period_s, self.round, self._what, self._log))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
