"""A bounded client for scaling tests: sequential GETs at a capped rate, ended by a deadline or ``stop``."""

from __future__ import annotations

import threading
import time
import urllib.request


class Load:
    """Bounded load: sequential GETs at most ``rate`` per second until stopped or the deadline."""

    def __init__(self, url: str, rate: float, deadline_s: float) -> None:
        self.url, self.rate, self.deadline = url, rate, time.monotonic() + deadline_s
        self.ok = self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as reply:
                    reply.read()
                    self.ok += reply.status == 200
                    self.failed += reply.status != 200
            except OSError:
                self.failed += 1
            self.stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))
