"""The agent's log shipper (agent/log_shipper.py) with a scripted engine and control plane in the test.

The engine hands out Docker's (timestamp, line) pairs from lists the test writes; the control plane
side keeps events by key as the store does and can refuse to answer for a while.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portside.agent.driver import ContainerState
from portside.agent.link import LinkError
from portside.agent.log_shipper import CURSOR_FILE, LogShipper
from portside.core.log_events import MAX_BATCH_EVENTS

SECOND = 1_000_000_000
T0 = 1_796_589_777 * SECOND


class Follow:
    def __init__(self, lines: list[tuple[int, bytes]]) -> None:
        self.lines = lines

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self.lines)

    def close(self) -> None:
        pass


class Engine:
    """Streams cut where the test says (``cuts``); the container runs until ``exited``."""

    def __init__(self, lines: list[tuple[int, bytes]], cuts: list[int]) -> None:
        self.lines, self.cuts, self.exited = lines, list(cuts), False
        self.follows: list[int] = []

    def follow_logs(self, container_id: str, since_s: int) -> Follow:
        self.follows.append(since_s)
        visible = [line for line in self.lines if line[0] >= since_s * SECOND]
        if self.cuts:
            visible = visible[: self.cuts.pop(0)]
        else:
            self.exited = True
        return Follow(visible)

    async def inspect(self, container_id: str) -> ContainerState:
        return ContainerState(container_id, "c", {}, "exited" if self.exited else "running")


class ControlPlaneSide:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.stored: dict[str, str] = {}
        self.calls = 0

    async def put_container_logs(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise LinkError("connection refused")
        assert len(request["events"]) <= MAX_BATCH_EVENTS
        for event in request["events"]:
            self.stored.setdefault(event["key"], event["message"])
        return {"accepted": len(request["events"])}


def ship(shipper: LogShipper) -> None:
    async def main() -> None:
        shipper.follow("c0ffee", {"task": "t", "containerName": "c"})
        await shipper.drain("c0ffee")

    asyncio.run(main())


def numbered(count: int) -> list[tuple[int, bytes]]:
    return [(T0 + i * SECOND // 10, f"n-{i}".encode()) for i in range(count)]


def test_a_stream_that_breaks_while_the_container_runs_is_read_again_from_the_cursor(tmp_path: Path) -> None:
    engine, plane = Engine(numbered(50), cuts=[20, 10]), ControlPlaneSide(failures=2)
    ship(LogShipper(plane, engine, tmp_path))  # type: ignore[arg-type]
    assert sorted(plane.stored.values(), key=lambda m: int(m[2:])) == [f"n-{i}" for i in range(50)]
    assert len(engine.follows) == 3 and engine.follows[1] > 0  # read again from (before) the cursor
    path = tmp_path / CURSOR_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["c0ffee"]["done"] == 1


def test_a_new_shipper_resumes_from_the_saved_cursor(tmp_path: Path) -> None:
    lines = numbered(40)
    first = ControlPlaneSide()
    engine = Engine(lines[:25], cuts=[])
    ship(LogShipper(first, engine, tmp_path))  # type: ignore[arg-type]
    cursors = json.loads((tmp_path / CURSOR_FILE).read_text())
    cursors["c0ffee"].pop("done")  # as if the agent died before the container exited
    (tmp_path / CURSOR_FILE).write_text(json.dumps(cursors))
    second = ControlPlaneSide()
    ship(LogShipper(second, Engine(lines, cuts=[]), tmp_path))  # type: ignore[arg-type]
    sent_again = set(second.stored) & set(first.stored)
    assert set(first.stored) | set(second.stored) == {f"{ts}:0" for ts, _ in lines}
    assert len(sent_again) <= 21  # only the 2 s before the cursor (and its second) is read again


def test_a_cursor_file_that_does_not_read_means_reading_everything_again(tmp_path: Path) -> None:
    (tmp_path / CURSOR_FILE).write_text("{not json")
    plane = ControlPlaneSide()
    ship(LogShipper(plane, Engine(numbered(5), cuts=[]), tmp_path))  # type: ignore[arg-type]
    assert len(plane.stored) == 5
