"""ChangeFeed (control/change_feed.py): what one replica writes reaches the other replica's own
watchers, over a real PostgreSQL (two ControlPlanes, two Store objects, one database)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control.change_feed import ChangeFeed
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.task import Task
from tests.support.agent_tasks import make_task

INSTANCE = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/0123456789abcdef0123456789abcdef"


@pytest.fixture
def planes(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ControlPlane, ControlPlane]]:
    config = ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"})
    a = ControlPlane(config, Store(postgres_url))
    b = ControlPlane(config, Store(postgres_url))
    yield a, b
    a.store.close()
    b.store.close()


async def _within(seconds: float, event: asyncio.Event) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def test_another_replicas_task_write_wakes_this_ones_assignment_poll_within_a_notify(
    planes: tuple[ControlPlane, ControlPlane],
) -> None:
    a, b = planes

    async def scenario() -> tuple[bool, float]:
        feed = ChangeFeed(b)
        feed.start()
        try:
            await asyncio.sleep(0.3)  # LISTENing
            loop = asyncio.get_running_loop()
            waiting = asyncio.ensure_future(b.assignment_waits.wait(INSTANCE, 5.0))
            await asyncio.sleep(0.05)
            started = loop.time()
            a.store.put_task(make_task(INSTANCE, group="service:web"))
            await waiting
            return True, loop.time() - started
        finally:
            await feed.close()

    woken, took = asyncio.run(scenario())
    assert woken and took < 0.5, took  # NOTIFY, not the 1 s poll


def test_reports_topics_routes_and_presence_reach_the_other_replica(planes: tuple[ControlPlane, ControlPlane]) -> None:
    a, b = planes
    topics: list[str] = []
    reports: list[Task] = []
    routes: list[int] = []
    b.watchers.append(topics.append)
    b.task_watchers.append(reports.append)
    b.routes_watchers.append(lambda: routes.append(1))
    task = make_task(INSTANCE, group="service:web")
    a.store.put_task(task)

    feed = ChangeFeed(b)
    a.changed("services")
    a.store.put_task(task, assigned=False)  # an agent's report, taken by a
    a.store.record_change("routes")
    a.saw_agent(INSTANCE)
    a.saw_lb_node("10.250.0.40")
    delivered = feed.catch_up()
    feed.merge_presence()

    assert delivered == 4  # the assignment, the topic, the report, the routes
    assert topics == ["services"]
    assert [t.arn for t in reports] == [task.arn]
    assert routes == [1]
    assert INSTANCE in b.agent_seen and "10.250.0.40" in b.lb_nodes
    # Its own writes are not delivered to itself again.
    b.changed("targets")
    assert feed.catch_up() == 0 and topics == ["services", "targets"]


def test_a_feed_behind_the_kept_log_relists_waking_everyone(planes: tuple[ControlPlane, ControlPlane]) -> None:
    a, b = planes
    topics: list[str] = []
    b.watchers.append(topics.append)
    feed = ChangeFeed(b)
    for _ in range(5):
        a.changed("services")
    a.store.trim_changes(keep=1)

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(b.assignment_waits.wait(INSTANCE, 5.0))
        await asyncio.sleep(0)
        feed.catch_up()
        return await asyncio.wait_for(waiting, 1.0)

    asyncio.run(scenario())  # woken: the relist wakes every poll
    assert feed.relists == 1
    assert set(topics) == {"services", "targets", "instances"}
    assert feed.seen == a.store.revision()
