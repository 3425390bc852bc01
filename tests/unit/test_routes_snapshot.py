"""PortsideAgent.WatchRoutes in process (control/routes_snapshot.py over a real SQLite store):
answers at once for another revision, waits for a change otherwise, wakes on target and instance
changes, refuses bad parameters naming them, and leaves no watcher behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control.elbv2 import certificates, config, listeners, load_balancers, target_groups, targets
from portside.control.plane import ControlPlane
from portside.control.routes_snapshot import NODE_TTL_S, watch_routes
from portside.control.store import Store
from portside.core.lb.model import LbConfig, Listener
from portside.core.lb.runtime import HealthView
from portside.errors import InvalidParameterException, PortsideError
from tests.support.instances import register_instance
from tests.support.server import free_port
from tests.support.tls import self_signed

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
        ({"address": "lb.example"}, "address must be the IP address"),
        ({"address": 7}, "address must be the IP address"),
    ],
)
async def test_bad_parameters_are_refused_naming_them(
    plane: ControlPlane, params: dict, message: str
) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidParameterException, match=message):
        await watch_routes(plane, REGION, params)
    assert plane.routes_watchers == [] and plane.lb_nodes == {}


async def test_a_node_that_names_its_address_is_remembered_for_the_agents(plane: ControlPlane) -> None:
    before = plane.clock()
    await watch_routes(plane, REGION, {"address": "10.250.0.40"})
    assert list(plane.lb_nodes) == ["10.250.0.40"] and before <= plane.lb_nodes["10.250.0.40"] <= plane.clock()


async def test_https_listeners_bring_their_certificates_and_unreadable_files_are_an_error_naming_them(
    plane: ControlPlane, tmp_path: Path
) -> None:
    group = make_group(plane)
    cert_path, key_path = self_signed(tmp_path, "edge.test")
    arn = certificates.import_certificate_pem(
        plane, REGION, "edge", cert_path.read_bytes(), key_path.read_bytes()
    )
    lb = load_balancers.create_load_balancer(
        plane, REGION, {"Name": "edge", "Scheme": "internal", "Subnets": ["s"]}
    )
    listeners.create_listener(
        plane,
        REGION,
        {
            "LoadBalancerArn": lb["LoadBalancers"][0]["LoadBalancerArn"],
            "Protocol": "HTTPS",
            "Port": free_port(),
            "Certificates": [{"CertificateArn": arn}],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": group}],
        },
    )
    document = await watch_routes(plane, REGION, {})
    assert document["listeners"][0]["certificates"] == [arn]
    assert document["certificates"] == {
        arn: {"certificate": cert_path.read_text(), "privateKey": key_path.read_text()}
    }
    stored = plane.store.certificates(REGION)[0]
    Path(stored["_key_path"]).unlink()
    with pytest.raises(PortsideError, match=f"certificate {arn}: its stored files cannot be read"):
        await watch_routes(plane, REGION, {})
    assert plane.routes_watchers == []


class DrainReporter:
    """The LbRuntime seam reduced to what this test drives: the drained callback (the server's proxy
    calls it when it has nothing in flight to a draining target)."""

    def __init__(self) -> None:
        self.drained: Any = None

    def bind_listener(self, listener: Listener) -> None: ...

    def close_listener(self, arn: str) -> None: ...

    def apply(self, config: LbConfig) -> None: ...

    def target_health(self, target_group_arn: str, target_id: str, port: int) -> HealthView:
        return HealthView("healthy")

    def set_drained_callback(self, callback: Any) -> None:
        self.drained = callback


@pytest.mark.parametrize("node_watching", [False, True])
async def test_while_nodes_watch_a_drain_ends_at_its_deadline_not_when_the_server_is_idle(
    plane: ControlPlane, node_watching: bool
) -> None:
    now = [1_000_000.0]
    plane.clock = lambda: now[0]
    group = make_group(plane)
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    target_groups.modify_target_group_attributes(
        plane, REGION, {"TargetGroupArn": group, "Attributes": delay}
    )
    register(plane, group, 49210)
    runtime = DrainReporter()
    config.attach(plane, runtime)
    if node_watching:
        await watch_routes(plane, REGION, {})
    now[0] += NODE_TTL_S - 1  # the node asked lately (or never)
    targets.deregister_targets(
        plane, REGION, {"TargetGroupArn": group, "Targets": [{"Id": REMOTE, "Port": 49210}]}
    )
    runtime.drained(group, REMOTE, 49210)  # the server's own proxy has nothing in flight to it
    assert plane.store.has_target(group, REMOTE, 49210) is node_watching
    now[0] += 30
    runtime.drained(group, REMOTE, 49210)  # the deadline passed: done however many nodes watch
    assert not plane.store.has_target(group, REMOTE, 49210)
