"""A loop that does one round of work every period until cancelled, and outlives a failed round.

The controllers (liveness, scaling) and the drained-target sweeper run this way. A round refused
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
