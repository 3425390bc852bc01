"""Leadership (control/leadership.py) over a real store file shared by two replicas' Store objects:
one leader at a time, take-over after the lease expires or is given up, and a deposed leader's
fenced writes refused by the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.control.leadership import LEASE, Leadership
from portside.control.store import Store
from portside.control.store.database import Deposed, fenced

TTL = 0.6


class Replica:
    def __init__(self, path: Path, name: str) -> None:
        self.store = Store(path)
        self.events: list[str] = []
        self.leadership = Leadership(self.store, on_elected=self._elected, on_deposed=self._deposed, ttl_s=TTL,
                                     holder=name)

    async def _elected(self) -> None:
        self.events.append(f"elected:{self.leadership.epoch}")

    async def _deposed(self) -> None:
        self.events.append("deposed")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a, b = Replica(tmp_path / "portside.db", "a"), Replica(tmp_path / "portside.db", "b")
    yield a, b
    a.store.close()
    b.store.close()


def test_one_leader_at_a_time_and_renewal_keeps_the_epoch(pair: tuple[Replica, Replica]) -> None:
    a, b = pair

    async def scenario() -> None:
        await a.leadership.tick()
        await b.leadership.tick()
        await a.leadership.tick()  # renewed
        await b.leadership.tick()

    asyncio.run(scenario())
    assert (a.leadership.is_leader, b.leadership.is_leader) == (True, False)
    assert a.events == ["elected:1"] and b.events == []
    assert a.store.lease(LEASE)[:2] == ("a", 1)


def test_an_expired_lease_passes_to_the_other_at_the_next_epoch_and_the_stale_leader_steps_down(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair

    async def scenario() -> None:
        await a.leadership.tick()
        time.sleep(TTL + 0.2)  # a stalls past its lease
        await b.leadership.tick()
        await a.leadership.tick()  # wakes up: the lease is another's

    asyncio.run(scenario())
    assert b.events == ["elected:2"] and b.leadership.epoch == 2
    assert a.events == ["elected:1", "deposed"] and not a.leadership.is_leader


def test_a_deposed_leaders_fenced_write_is_refused_and_writes_nothing(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    asyncio.run(a.leadership.tick())
    time.sleep(TTL + 0.2)
    asyncio.run(b.leadership.tick())
    before = a.store.revision()
    with fenced(LEASE, "a", 1), pytest.raises(Deposed, match="no longer held by a at epoch 1"):
        with a.store.transaction():
            a.store.put_meta("placed-by-a", True)
    assert a.store.get_meta("placed-by-a") is None and a.store.revision() == before
    with fenced(LEASE, "b", 2), b.store.transaction():  # the holder's own fenced write lands
        b.store.put_meta("placed-by-b", True)
    assert a.store.get_meta("placed-by-b") is True


def test_the_fence_reaches_tasks_started_inside_it_and_no_others(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    asyncio.run(b.leadership.tick())  # b leads at epoch 1: "a" at epoch 1 is not the holder

    async def write(key: str) -> None:
        with a.store.transaction():
            a.store.put_meta(key, True)

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        with fenced(LEASE, "a", 1):
            inside = asyncio.ensure_future(write("inside"))
        outside = asyncio.ensure_future(write("outside"))
        results = await asyncio.gather(inside, outside, return_exceptions=True)
        return results[0], results[1]  # type: ignore[return-value]

    inside, outside = asyncio.run(scenario())
    assert isinstance(inside, Deposed) and outside is None
    assert a.store.get_meta("inside") is None and a.store.get_meta("outside") is True


def test_closing_gives_the_lease_up_so_the_other_takes_over_at_once(pair: tuple[Replica, Replica]) -> None:
    a, b = pair

    async def scenario() -> None:
        await a.leadership.start()
        await a.leadership.close()
        await b.leadership.tick()  # no wait for the lease to expire

    asyncio.run(scenario())
    assert a.events == ["elected:1", "deposed"]
    assert b.events == ["elected:2"]


def test_a_replica_restarted_after_a_crash_takes_its_own_lease_over_at_once_at_the_next_epoch(tmp_path: Path) -> None:
    """kill -9 leaves the lease held until it expires: the same replica's next run need not wait for it,
    another replica must."""
    path = tmp_path / "portside.db"
    stores = [Store(path) for _ in range(3)]
    noop = _noop

    async def scenario() -> tuple[bool, bool, int]:
        crashed = Leadership(stores[0], on_elected=noop, on_deposed=noop, ttl_s=30, replica="instance/a")
        await crashed.tick()  # leads, then dies without giving the lease up
        other = Leadership(stores[1], on_elected=noop, on_deposed=noop, ttl_s=30, replica="instance/b")
        await other.tick()
        again = Leadership(stores[2], on_elected=noop, on_deposed=noop, ttl_s=30, replica="instance/a")
        await again.tick()
        return other.is_leader, again.is_leader, again.epoch

    try:
        other_leads, again_leads, epoch = asyncio.run(scenario())
        assert not other_leads and again_leads and epoch == 2
    finally:
        for store in stores:
            store.close()


async def _noop() -> None:
    return None
