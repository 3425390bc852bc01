"""PortsideAgent.WatchRoutes in process (control/routes_snapshot.py over a real SQLite store):
answers at once for another revision, waits for a change otherwise, wakes on target and instance
changes, refuses bad parameters naming them, and leaves no watcher behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from portside.config import ServerConfig
from portside.control.elbv2 import target_groups, targets
from portside.control.plane import ControlPlane
from portside.control.routes_snapshot import watch_routes
from portside.control.store import Store
from portside.errors import InvalidParameterException
from tests.support.instances import register_instance

REGION = "us-east-1"
REMOTE = "i-0remote0000000001"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(
        ServerConfig(state_dir=tmp_path, extra={"cluster": "default", "min_health_check_interval": "1"}),
        store,
    )
    register_instance(plane, address="10.0.0.9", instance_id=REMOTE)
    yield plane
    store.close()


def make_group(plane: ControlPlane) -> str:
    answer = target_groups.create_target_group(
        plane, REGION, {"Name": "web", "Protocol": "HTTP", "Port": 80, "VpcId": "vpc-1"}
    )
    return str(answer["TargetGroups"][0]["TargetGroupArn"])


def register(plane: ControlPlane, group: str, port: int) -> None:
    targets.register_targets(
        plane, REGION, {"TargetGroupArn": group, "Targets": [{"Id": REMOTE, "Port": port}]}
    )


def addresses(document: dict, group: str) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    [body] = [g for g in document["targetGroups"] if g["arn"] == group]
    return [(t["address"], t["port"]) for t in body["targets"]]


async def test_without_a_revision_the_snapshot_comes_at_once_with_instance_targets_resolved(
    plane: ControlPlane,
) -> None:
    group = make_group(plane)
    register(plane, group, 49200)
    document = await asyncio.wait_for(watch_routes(plane, REGION, {"waitSeconds": 20}), 2)
    assert addresses(document, group) == [("10.0.0.9", 49200)]
    assert isinstance(document["revision"], int) and document["certificates"] == {}
    other = await asyncio.wait_for(
        watch_routes(plane, REGION, {"sinceRevision": document["revision"] + 1, "waitSeconds": 20}), 2
    )
    assert other == document


async def test_a_poll_at_the_current_revision_waits_and_answers_the_change(plane: ControlPlane) -> None:
    group = make_group(plane)
    first = await watch_routes(plane, REGION, {})
    poll = asyncio.ensure_future(
        watch_routes(plane, REGION, {"sinceRevision": first["revision"], "waitSeconds": 20})
    )
    await asyncio.sleep(0.2)
    assert not poll.done()
    register(plane, group, 49201)
    document = await asyncio.wait_for(poll, 2)
    assert document["revision"] != first["revision"] and addresses(document, group) == [("10.0.0.9", 49201)]
    assert plane.routes_watchers == [] and len(plane.watchers) == 0


async def test_an_instance_moving_wakes_the_poll_with_the_new_address(plane: ControlPlane) -> None:
    group = make_group(plane)
    register(plane, group, 49202)
    first = await watch_routes(plane, REGION, {})
    poll = asyncio.ensure_future(
        watch_routes(plane, REGION, {"sinceRevision": first["revision"], "waitSeconds": 20})
    )
    await asyncio.sleep(0.1)
    register_instance(plane, address="10.0.0.10", instance_id=REMOTE)
    document = await asyncio.wait_for(poll, 2)
    assert addresses(document, group) == [("10.0.0.10", 49202)]


async def test_without_a_change_the_same_revision_comes_back_when_the_wait_ends(plane: ControlPlane) -> None:
    make_group(plane)
    first = await watch_routes(plane, REGION, {})
    plane.changed("services")  # not a topic that moves routes: the poll waits on
    started = asyncio.get_running_loop().time()
    again = await watch_routes(plane, REGION, {"sinceRevision": first["revision"], "waitSeconds": 0.4})
    assert again == first and asyncio.get_running_loop().time() - started >= 0.35
    assert plane.routes_watchers == [] and len(plane.watchers) == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sinceRevision": -1}, "sinceRevision must be an integer of 0 or more"),
        ({"sinceRevision": "7"}, "sinceRevision must be an integer"),
        ({"sinceRevision": True}, "sinceRevision must be an integer"),
        ({"waitSeconds": 26}, "waitSeconds must be a number from 0 to 25"),
        ({"waitSeconds": "1"}, "waitSeconds must be a number"),
    ],
)
async def test_bad_parameters_are_refused_naming_them(
    plane: ControlPlane, params: dict, message: str
) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidParameterException, match=message):
        await watch_routes(plane, REGION, params)
    assert plane.routes_watchers == []
