"""Scheduled scaling: every few seconds, run the scheduled actions whose time has come
(``control/scheduled_actions.py``).

The round's clock is the server's, except in tests: ``$PORTSIDE_TEST_SCHEDULE_CLOCK_FILE`` names a
file whose content (seconds, a decimal number) is added to the clock of this round and nothing
else, so a test moves scheduled time forward while the server runs. It cannot be switched on by
accident: the server refuses to start with it unless the file lies inside its own state
directory and the API listens on loopback only, and it says so in its log at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from portside.config import ServerConfig
from portside.control import rounds, scheduled_actions
from portside.control.plane import ControlPlane
from portside.errors import PortsideError

log = logging.getLogger("portside.scheduled_scaling")

#: Seconds between rounds: a scheduled action runs at most this long after its time.
ROUND_S = 5.0


def round_clock(config: ServerConfig, real: Callable[[], float] = time.time) -> Callable[[], float]:
    """The clock scheduled actions run by: ``real``, or ``real`` plus the test offset file's seconds."""
    path = config.schedule_clock_file
    if path is None:
        return real
    state_dir = Path(config.state_dir).resolve()
    if not config.api_is_loopback or not Path(path).resolve().is_relative_to(state_dir):
        raise PortsideError(
            f"PORTSIDE_TEST_SCHEDULE_CLOCK_FILE={path} is for tests: it must lie inside --state-dir "
            f"({state_dir}) and --api must be a loopback address"
        )
    log.warning("TEST CLOCK: scheduled actions run by the real clock plus the seconds in %s", path)

    def shifted() -> float:
        try:
            offset = float(Path(path).read_text().strip() or 0)
        except (OSError, ValueError) as exc:
            log.warning("test clock file %s unreadable (%s): no offset", path, exc)
            offset = 0.0
        return real() + offset

    return shifted


class ScheduledScaling(rounds.Periodic):
    def __init__(self, plane: ControlPlane, clock: Callable[[], float], period_s: float = ROUND_S) -> None:
        super().__init__(period_s, "scheduled scaling round", log)
        self.plane = plane
        self.clock = clock

    def round(self) -> None:
        self.tick()

    def tick(self) -> None:
        for arn in scheduled_actions.run_due(self.plane, self.clock()):
            log.info("scheduled action ran: %s", arn)
