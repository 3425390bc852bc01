"""Integration fixtures: a real portside server process on the real Docker Engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.hosts import hosts_machine, make_cluster  # noqa: F401  (fixtures for many-hosts tests)
from tests.support.netns import OutsideHost, make_outside_host, netns_available
from tests.support import server as server_support
from tests.support.server import PortsideProcess
from tests.support.stores import store_at  # noqa: F401  (both store backends, for the store's contract tests)


@pytest.fixture(scope="session", autouse=True)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store every server of the session keeps its state in: ``PORTSIDE_TEST_STORE`` is ``sqlite``
    (the default: a file in each server's state dir) or ``postgresql`` (a database of its own on the
    session's PostgreSQL server, for each server; CI runs the integration suite once so)."""
    backend = os.environ.get("PORTSIDE_TEST_STORE", "sqlite")
    if backend == "sqlite":
        yield backend
        return
    if backend != "postgresql":
        raise pytest.UsageError(f"PORTSIDE_TEST_STORE={backend}: must be sqlite or postgresql")
    postgres = request.getfixturevalue("postgres_server")
    server_support.new_store = lambda: postgres.create_database(f"server_{uuid.uuid4().hex[:16]}")
    try:
        yield backend
    finally:
        server_support.new_store = None


def _stop_everything(server: PortsideProcess) -> None:
    try:
        ecs = server.client()
        for status in ("RUNNING",):
            arns = ecs.list_tasks(desiredStatus=status, maxResults=100).get("taskArns", [])
            for arn in arns:
                ecs.stop_task(task=arn, reason="test teardown")
    except Exception:
        pass


@pytest.fixture(scope="module")
def portside(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, busybox_image: str) -> Iterator[PortsideProcess]:
    """A portside server for one test module; every container it started is removed afterwards."""
    server = PortsideProcess(tmp_path_factory.mktemp("portside"))
    server.start()
    yield server
    _stop_everything(server)
    server.stop()
    remove_server_containers(docker_client, server)


def remove_server_containers(docker_client: Any, server: PortsideProcess) -> None:
    from portside.agent.driver import LABEL_OWNER
    from portside.agent.host import owner_id

    owner = owner_id(server.state_dir)
    for container in docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}):
        container.remove(force=True, v=True)
    remove_server_chain(server)


def remove_server_chain(server: PortsideProcess) -> None:
    """Take out the firewall chain a killed server may have left (a clean stop with no copies does it itself)."""
    from portside.agent.firewall import HostFirewall
    from portside.agent.host import owner_id
    from portside.core.firewall import chain_name

    HostFirewall(chain_name(owner_id(server.state_dir))).remove()


@pytest.fixture
def ecs(portside: PortsideProcess) -> Any:
    return portside.client()


@pytest.fixture
def outside() -> Iterator[OutsideHost]:
    """Another host on this one's link: a network namespace joined by a veth pair."""
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    host = make_outside_host()
    yield host
    host.close()
