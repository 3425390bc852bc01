"""Wakes agents' assignment polls (control/agent_protocol.py) when a task of their instance is written."""

from __future__ import annotations

import asyncio


class AssignmentWaits:
    """Wakes the polls of a container instance when one of its tasks is written."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, instance_arn: str) -> None:
        event = self._events.pop(instance_arn, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    async def wait(self, instance_arn: str, timeout: float) -> None:
        event = self._events.setdefault(instance_arn, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
