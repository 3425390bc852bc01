"""Fixtures shared by the whole test suite.

Docker fixtures skip (never fail) when no Docker Engine answers, so the unit
tests run anywhere. Every container a test starts carries the labels
``portside.test=1`` and ``portside.test.session=<this session>``; the session
removes its own containers when it ends and sweeps up those left behind by
dead sessions on this host, and never touches another live session's.

PostgreSQL fixtures (tests/support/postgres.py) never skip: without PostgreSQL's binaries they
fail, telling you to run ./scripts/setup. One throwaway cluster serves the whole session
(``postgres_server``); each test gets databases of its own (``postgres_url``, ``make_postgres_url``).
"""

from __future__ import annotations

import atexit
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Headless Chromium: its fixtures, the hook that fails a test whose pages reported problems, and
# the one that keeps Playwright's event loop out of the way of asyncio tests.
from tests.support.browser import (  # noqa: F401
    browser, browser_page, chromium, playwright_driver, pytest_runtest_call, pytest_runtest_protocol,
)
from tests.support.postgres import PostgresServer, free_loopback_port, sweep_dead_servers

TEST_LABEL = "portside.test"
SESSION_LABEL = "portside.test.session"
SESSION_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
TEST_LABELS = {TEST_LABEL: "1", SESSION_LABEL: SESSION_ID}


def _remove_quietly(container: Any) -> None:
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # e.g. "removal already in progress"
        if "in progress" not in str(exc):
            raise


def remove_test_containers(client: Any, session_id: str = SESSION_ID) -> int:
    """Remove every container labelled for the test session ``session_id``; return how many."""
    filters = {"label": [f"{TEST_LABEL}=1", f"{SESSION_LABEL}={session_id}"]}
    containers = client.containers.list(all=True, filters=filters, ignore_removed=True)
    for container in containers:
        _remove_quietly(container)
    return len(containers)


def _session_is_dead(session_id: str) -> bool:
    host, _, rest = session_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _sweep_dead_sessions(client: Any) -> None:
    for container in client.containers.list(
        all=True, filters={"label": f"{TEST_LABEL}=1"}, ignore_removed=True
    ):
        session = (container.labels or {}).get(SESSION_LABEL)
        if session and session != SESSION_ID and _session_is_dead(session):
            _remove_quietly(container)


@pytest.fixture(scope="session")
def docker_client(request: pytest.FixtureRequest) -> Any:
    """A ``docker.DockerClient`` for the local engine; skips the test when none answers.

    At session end, removes every container this session labelled (finalizer).
    """
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # DockerException, ConnectionError, PermissionError...
        pytest.skip(f"Docker Engine unreachable: {exc}")

    def cleanup() -> None:
        try:
            remove_test_containers(client)
        finally:
            client.close()

    request.addfinalizer(cleanup)
    _sweep_dead_sessions(client)
    return client


@pytest.fixture(scope="session")
def docker_test_labels() -> dict[str, str]:
    """Labels to put on every container a test starts (session cleanup finds them)."""
    return dict(TEST_LABELS)


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any) -> str:
    """Tag of the busybox web image (portside/busybox-web:1), built once per session."""
    from portside.images import build_busybox_web_image

    return build_busybox_web_image(docker_client)


@pytest.fixture(scope="session")
def nginx_image(docker_client: Any) -> str:
    """Tag of the keep-alive nginx image (portside/nginx-keepalive:1), built once per session."""
    from portside.images import build_nginx_image

    return build_nginx_image(docker_client)


@pytest.fixture
def run_container(
    docker_client: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """``run_container(image, command=None, **kwargs)``: start a detached, labelled
    container with ``docker_client.containers.run`` and remove it when the test ends."""
    started: list[Any] = []

    def finalize() -> None:
        for container in started:
            _remove_quietly(container)

    request.addfinalizer(finalize)

    def run(image: str, command: Any = None, **kwargs: Any) -> Any:
        kwargs["labels"] = {**TEST_LABELS, **(kwargs.get("labels") or {})}
        kwargs["detach"] = True
        container = docker_client.containers.run(image, command, **kwargs)
        started.append(container)
        return container

    yield run


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> PostgresServer:
    """A ``PostgresServer`` (tests/support/postgres.py) running for the whole session on a free port of
    127.0.0.1, in a new folder; closed at the end however the session ends (finalizer, and atexit
    for an interrupted one). Folders and clusters of crashed earlier sessions are swept first."""
    sweep_dead_servers()
    server = PostgresServer(free_loopback_port())
    atexit.register(server.close)
    request.addfinalizer(server.close)
    server.start()
    return server


@pytest.fixture
def make_postgres_url(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """``make_postgres_url()``: the URL of a new, empty database of its own on the session's server
    (``postgresql://portside@127.0.0.1:PORT/test_<hex>``); each is dropped when the test ends, its
    sessions ended first. A test that left the server stopped or killed finds it started again."""
    names: list[str] = []

    def make() -> str:
        postgres_server.start()  # a no-op unless an earlier test left it down
        name = f"test_{uuid.uuid4().hex[:16]}"
        names.append(name)
        return postgres_server.create_database(name)

    yield make
    postgres_server.start()
    for name in names:
        postgres_server.drop_database(name)


@pytest.fixture
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which the test may stop, kill or break (the session's
    stays untouched); closed when the test ends, however it ends."""
    server = PostgresServer(free_loopback_port())
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(make_postgres_url: Callable[[], str]) -> str:
    """The URL of a new, empty database for this test alone (see ``make_postgres_url``)."""
    return make_postgres_url()
