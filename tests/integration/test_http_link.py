"""The agent protocol over HTTP (agent/http_link.py) against a real ApiServer on 127.0.0.1.

The server runs in a background event loop thread over a real SQLite store with ``--auth always``
and one accepted key; the link runs on the test's own loop, signing with a profile of a real
credentials file. Unreachable servers are ports of 127.0.0.1 bound by the test and not listening
(a connection is refused), held for the whole test so nothing else can take them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.credentials import Credentials

from portside.agent.http_link import HttpLink, profile_credentials
from portside.agent.link import LinkError, LinkRefused
from portside.agent.registration import registration
from portside.api.server import ApiServer
from portside.config import ServerConfig
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.lifecycle import TaskStatus
from tests.support.agent_tasks import make_task

REGION = "us-east-1"
KEY, SECRET = "AKIAPORTSIDEAGENT01", "agent-secret-0123456789"
HOST = "i-0a1b2c3d4e5f60718"


class Server:
    """One portside API on 127.0.0.1:<free port>, accepting only KEY."""

    def __init__(self, state_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = Store(state_dir / "portside.db")
        self.plane = ControlPlane(
            ServerConfig(state_dir=state_dir, api_port=0, extra={"cluster": "default"}), self.store, ""
        )
        self.api = ApiServer(self.plane, {KEY: SECRET}, auth="always")
        asyncio.run_coroutine_threadsafe(self.api.start("127.0.0.1", 0), self.loop).result(30)
        assert self.api._runner is not None
        self.url = f"http://127.0.0.1:{self.api._runner.addresses[0][1]}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def dead_urls() -> Iterator[list[str]]:
    """Two URLs of 127.0.0.1 where nothing listens (bound, never listening: connections are refused)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def register_request() -> dict[str, Any]:
    return registration(
        cluster="default",
        region=REGION,
        instance_id=HOST,
        address="127.0.0.1",
        zone=None,
        docker_version="test",
        cpu_units=1024,
        memory_mib=1024,
        reserved_tcp=[22],
        reserved_udp=[],
        attributes={"stack": "blue"},
        awsvpc=False,
    )


def call(servers: list[str], credentials: Credentials, action: str, request: dict[str, Any]) -> Any:
    """One call through a fresh HttpLink on this thread's own loop: (answer, the link's current URL)."""

    async def main() -> Any:
        link = HttpLink(servers, credentials, REGION)
        try:
            answer = await getattr(link, action)(request)
            return answer, link.servers[link._current]
        finally:
            await link.close()

    return asyncio.run(main())


# -- signed calls


def test_signed_calls_with_the_profiles_key_are_accepted(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = nobody\naws_secret_access_key = x\n\n"
        f"[agent]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
    )
    credentials = profile_credentials(str(path), "agent")
    registered, _ = call([server.url], credentials, "register", register_request())
    arn = registered["containerInstance"]["containerInstanceArn"]
    assert registered["containerInstance"]["ec2InstanceId"] == HOST
    heartbeat, _ = call(
        [server.url], credentials, "heartbeat", {"cluster": "default", "containerInstance": arn}
    )
    assert heartbeat == {"heartbeatSeconds": 5.0, "ttlSeconds": 15.0, "lbSources": []}
    polled, _ = call(
        [server.url], credentials, "poll_assignments", {"containerInstance": arn, "waitSeconds": 0}
    )
    assert (polled["complete"], polled["tasks"]) == (True, [])
    [stored] = server.store.list_container_instances(REGION, "default")
    assert stored["_address"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("key", "secret"),
    [(KEY, "not-the-secret"), ("AKIAUNKNOWNKEY000001", SECRET)],
    ids=["wrong-secret", "unknown-key"],
)
def test_a_wrong_key_is_refused_and_registers_nothing(server: Server, key: str, secret: str) -> None:
    with pytest.raises(LinkRefused, match="RegisterContainerInstance: HTTP 403"):
        call([server.url], Credentials(key, secret), "register", register_request())
    assert server.store.list_container_instances(REGION, "default") == []


def test_a_refusal_of_the_operation_is_link_refused_naming_the_field(server: Server) -> None:
    credentials = Credentials(KEY, SECRET)
    request = register_request()
    request["instanceIdentityDocument"] = "{not json"
    with pytest.raises(LinkRefused, match="HTTP 400 .*instanceIdentityDocument must be a JSON object"):
        call([server.url], credentials, "register", request)
    with pytest.raises(LinkRefused, match="containerInstance: .* is not registered in cluster default"):
        call(
            [server.url],
            credentials,
            "heartbeat",
            {"containerInstance": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/ab"},
        )


def test_usage_reports_are_recorded_and_a_bad_one_is_refused_naming_the_field(server: Server) -> None:
    """PublishMetrics over HTTP: the same operation the server's own agent calls in process."""
    credentials = Credentials(KEY, SECRET)
    registered, _ = call([server.url], credentials, "register", register_request())
    arn = registered["containerInstance"]["containerInstanceArn"]
    task = make_task(arn, group="service:web")  # 128 CPU units reserved
    task.last_status = TaskStatus.RUNNING
    server.store.put_task(task)
    used = {"containerName": "web", "cpuNanoseconds": 125_000_000, "seconds": 1.0, "memoryBytes": 1 << 20}
    request = {"cluster": "default", "containerInstance": arn, "tasks": [{"task": task.arn, "containers": [used]}]}
    answer, _ = call([server.url], credentials, "publish_metrics", request)
    assert answer == {"acknowledgment": "ACCEPTED", "ignored": [], "reportSeconds": 20.0}
    dimensions = {"ClusterName": "default", "ServiceName": "web"}
    (point,) = server.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", dimensions, 0, 2e9)
    assert point.stats.sum == 100.0  # an eighth of a core against 128 units
    request["tasks"][0]["containers"][0]["memoryBytes"] = -1
    with pytest.raises(LinkRefused, match=r"HTTP 400 .*tasks\[0\].containers\[0\].memoryBytes must be an integer"):
        call([server.url], credentials, "publish_metrics", request)
    (point,) = server.store.metric_datapoints(REGION, "AWS/ECS", "CPUUtilization", dimensions, 0, 2e9)
    assert point.stats.sample_count == 1  # the refused report recorded nothing


# -- failover


def test_an_unreachable_first_url_fails_over_to_the_next(server: Server, dead_urls: list[str]) -> None:
    registered, current = call(
        [dead_urls[0], server.url + "/"], Credentials(KEY, SECRET), "register", register_request()
    )
    assert registered["containerInstance"]["ec2InstanceId"] == HOST
    assert current == server.url  # the next call starts at the server that answered


def test_all_urls_unreachable_is_a_link_error_naming_each(dead_urls: list[str]) -> None:
    with pytest.raises(LinkError) as failed:
        call(dead_urls, Credentials(KEY, SECRET), "heartbeat", {"containerInstance": "x"})
    assert not isinstance(failed.value, LinkRefused)  # the agent retries it later
    for url in dead_urls:
        assert url in str(failed.value)


def test_a_server_error_is_a_link_error_to_retry_not_a_refusal() -> None:
    async def main() -> None:
        async def busy(request: web.Request) -> web.Response:
            return web.json_response({"__type": "ServerException", "message": "busy"}, status=503)

        app = web.Application()
        app.router.add_post("/", busy)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        link = HttpLink([f"http://127.0.0.1:{runner.addresses[0][1]}"], Credentials(KEY, SECRET), REGION)
        try:
            with pytest.raises(LinkError, match="Heartbeat: HTTP 503 ServerException: busy") as failed:
                await link.heartbeat({"containerInstance": "x"})
            assert not isinstance(failed.value, LinkRefused)
        finally:
            await link.close()
            await runner.cleanup()

    asyncio.run(main())


def test_a_link_needs_a_url() -> None:
    with pytest.raises(ValueError, match="--server: give at least one URL"):
        HttpLink([], Credentials(KEY, SECRET), REGION)


# -- profile_credentials


def test_profile_credentials_reads_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"[agent]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    credentials = profile_credentials(str(path), "agent")
    assert (credentials.access_key, credentials.secret_key) == (KEY, SECRET)


@pytest.mark.parametrize(
    ("content", "profile", "message"),
    [
        (None, "agent", "cannot be read"),
        ("not an ini file\n", "agent", "cannot be read"),
        (
            f"[other]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n",
            "agent",
            r"no \[agent\] section \(--profile\)",
        ),
        (
            f"[agent]\naws_secret_access_key = {SECRET}\n",
            "agent",
            r"\[agent\] needs aws_access_key_id and aws_secret_access_key",
        ),
        (
            f"[agent]\naws_access_key_id = {KEY}\naws_secret_access_key =\n",
            "agent",
            r"\[agent\] needs aws_access_key_id",
        ),
    ],
    ids=["missing-file", "not-ini", "missing-section", "missing-key-id", "empty-secret"],
)
def test_profile_credentials_errors_name_the_file_and_what_is_missing(
    tmp_path: Path, content: str | None, profile: str, message: str
) -> None:
    path = tmp_path / "credentials"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=f"^--credentials {path}: {message}"):
        profile_credentials(str(path), profile)
