"""The dashboard's access rules over real HTTP against a real server: Host, sign-in, sessions, CSRF, streams.

Sign-in is exercised with ``--auth always`` on loopback, which takes the same path a peer off
loopback takes (the loopback exemption is the only difference, and it is off).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.integration.conftest import remove_server_containers
from tests.support.netns import OutsideHost
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

KEY, SECRET = "AKIDDASHBOARD", "dash/secret+key"


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self) -> str:
        """The ``name=value`` of the session cookie this reply sets ("" when none)."""
        value = self.headers.get("Set-Cookie") or ""
        return value.split(";", 1)[0] if value.startswith("portside_session=") else ""


def call(server: PortsideProcess, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        all_headers = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        connection.request(method, path, body=body or None, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def own_origin(server: PortsideProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("dashboard"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


def loopback_session(server: PortsideProcess) -> tuple[str, str]:
    """(cookie, CSRF token) of a fresh loopback session, as the page gets them."""
    page = call(server, "GET", "/ui")
    assert page.status == 200
    cookie = page.cookie()
    info = call(server, "GET", "/ui/api/session", {"Cookie": cookie})
    assert info.status == 200
    return cookie, info.json()["csrfToken"]


def test_the_page_and_its_assets_are_served_with_security_headers(server: PortsideProcess) -> None:
    page = call(server, "GET", "/ui")
    assert page.status == 200 and b'src="/ui/static/app.js"' in page.body
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under --api-tls it is Secure
    for asset, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        reply = call(server, "GET", f"/ui/static/{asset}")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith(kind)
    assert call(server, "GET", "/ui/static/..%2Fsessions.py").status == 404
    assert call(server, "GET", "/ui/static/index.html").status == 404  # pages only at their own paths


def test_loopback_views_open_without_credentials(server: PortsideProcess) -> None:
    server.client().create_cluster(clusterName="dash-seen")
    state = call(server, "GET", "/ui/api/state")
    assert state.status == 200
    assert "dash-seen" in [c["name"] for c in state.json()["clusters"]]


def test_a_host_that_does_not_name_the_api_is_refused(server: PortsideProcess) -> None:
    for path in ("/ui", "/ui/api/state", "/ui/api/events", "/ui/api/logs?task=x", "/ui/static/app.js"):
        reply = call(server, "GET", path, {"Host": f"rebind.evil.example:{server.port}"})
        assert reply.status == 403, path
        assert reply.json()["__type"] == "AccessDeniedException"
        assert "rebind.evil.example" in reply.json()["message"]
        assert not reply.cookie()


def test_actions_need_the_session_token_and_the_same_origin(server: PortsideProcess) -> None:
    ecs = server.client()
    [instance_arn] = eventually(lambda: ecs.list_container_instances(cluster="default")["containerInstanceArns"],
                                what="the server's own container instance")
    cookie, token = loopback_session(server)
    drain = json.dumps({"action": "drain", "cluster": "default", "containerInstance": instance_arn}).encode()
    good = {"Cookie": cookie, "Origin": own_origin(server), "X-Portside-CSRF": token, "Content-Type": "application/json"}
    refusals = {
        "no token": {k: v for k, v in good.items() if k != "X-Portside-CSRF"},
        "another session's token": {**good, "X-Portside-CSRF": loopback_session(server)[1]},
        "no session": {k: v for k, v in good.items() if k != "Cookie"},
        "another site": {**good, "Origin": "http://evil.example"},
        "no Origin and no Sec-Fetch-Site": {k: v for k, v in good.items() if k != "Origin"},
        "cross-site fetch metadata": {**good, "Sec-Fetch-Site": "cross-site"},
    }
    for why, headers in refusals.items():
        reply = call(server, "POST", "/ui/api/actions", headers, drain)
        assert reply.status == 403, why
        assert reply.json()["__type"] == "AccessDeniedException", why
    status = ecs.describe_container_instances(cluster="default", containerInstances=[instance_arn])["containerInstances"][0]["status"]
    assert status == "ACTIVE"  # nothing was drained
    # Sec-Fetch-Site: same-origin stands in for a missing Origin (what browsers send on same-origin GET-like fetches).
    fetch_metadata = {**refusals["no Origin and no Sec-Fetch-Site"], "Sec-Fetch-Site": "same-origin"}
    reply = call(server, "POST", "/ui/api/actions", fetch_metadata, drain)
    assert reply.status == 200, reply.body
    assert reply.json() == {"action": "drain", "operation": "UpdateContainerInstancesState"}
    described = ecs.describe_container_instances(cluster="default", containerInstances=[instance_arn])["containerInstances"][0]
    assert described["status"] == "DRAINING"
    ecs.update_container_instances_state(cluster="default", containerInstances=[instance_arn], status="ACTIVE")


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({"action": "explode"}, "InvalidParameterException", "action must be one of scale, redeploy, drain, stop"),
        ({"action": "scale", "cluster": "default", "service": "web"}, "InvalidParameterException", "needs desiredCount"),
        ({"action": "scale", "cluster": "default", "service": "web", "desiredCount": 1, "launchType": "EC2"},
         "InvalidParameterException", "no field launchType"),
        ({"action": "scale", "cluster": "default", "service": "idle", "desiredCount": -1},
         "InvalidParameterException", "desiredCount must be a non-negative integer"),
        ({"action": "scale", "cluster": "default", "service": "nope", "desiredCount": 1}, "ServiceNotFoundException", ""),
        ({"action": "stop", "cluster": "default", "task": "0123456789abcdef"}, "InvalidParameterException", ""),
        ({"action": "drain", "cluster": "default", "containerInstance": "nope"}, "InvalidParameterException", "nope"),
        (["not", "an", "object"], "InvalidParameterException", "JSON object"),
    ],
)
def test_bad_actions_get_the_api_s_error_and_change_nothing(server: PortsideProcess, body: Any, code: str, named: str) -> None:
    ecs = server.client()
    if not ecs.describe_services(cluster="default", services=["idle"])["services"]:
        ecs.register_task_definition(family="idle", containerDefinitions=[{"name": "c", "image": "busybox", "memory": 16}])
        ecs.create_service(cluster="default", serviceName="idle", taskDefinition="idle", desiredCount=0)
    cookie, token = loopback_session(server)
    headers = {"Cookie": cookie, "Origin": own_origin(server), "X-Portside-CSRF": token}
    reply = call(server, "POST", "/ui/api/actions", headers, json.dumps(body).encode())
    assert 400 <= reply.status < 500, reply.body
    assert reply.json()["__type"] == code
    assert named in reply.json()["message"]
    assert ecs.describe_services(cluster="default", services=["idle"])["services"][0]["desiredCount"] == 0


def test_a_log_tail_of_an_unknown_task_is_refused_by_name(server: PortsideProcess) -> None:
    reply = call(server, "GET", "/ui/api/logs?task=arn:aws:ecs:us-east-1:000000000000:task/default/nope")
    assert reply.status == 400
    assert reply.json()["__type"] == "InvalidParameterException" and "task:" in reply.json()["message"]


def test_force_new_deployment_from_the_page_starts_a_deployment(server: PortsideProcess) -> None:
    ecs = server.client()
    ecs.register_task_definition(family="redeployed", containerDefinitions=[{"name": "c", "image": "busybox", "memory": 16}])
    ecs.create_service(cluster="default", serviceName="redeployed", taskDefinition="redeployed", desiredCount=0)
    before = {d["id"] for d in ecs.describe_services(services=["redeployed"])["services"][0]["deployments"]}
    cookie, token = loopback_session(server)
    headers = {"Cookie": cookie, "Origin": own_origin(server), "X-Portside-CSRF": token}
    body = json.dumps({"action": "redeploy", "cluster": "default", "service": "redeployed"}).encode()
    reply = call(server, "POST", "/ui/api/actions", headers, body)
    assert reply.status == 200 and reply.json() == {"action": "redeploy", "operation": "UpdateService"}
    after = ecs.describe_services(services=["redeployed"])["services"][0]["deployments"]
    assert [d["status"] for d in after if d["id"] not in before] == ["PRIMARY"]


def test_an_action_body_that_is_not_json_is_refused(server: PortsideProcess) -> None:
    cookie, token = loopback_session(server)
    headers = {"Cookie": cookie, "Origin": own_origin(server), "X-Portside-CSRF": token}
    reply = call(server, "POST", "/ui/api/actions", headers, b"{nope")
    assert reply.status == 400 and reply.json()["__type"] == "InvalidParameterException"


def _read_event(stream: socket.socket, buffer: bytearray) -> dict[str, Any]:
    """The next ``state`` event of an SSE stream (keep-alive comments skipped)."""
    while True:
        end = buffer.find(b"\n\n")
        if end >= 0:
            frame = bytes(buffer[:end])
            del buffer[: end + 2]
            data = [line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")]
            if data:
                return json.loads(b"".join(data))
            continue
        chunk = stream.recv(65536)
        if not chunk:
            raise EOFError("the stream ended")
        buffer.extend(chunk)


def _open_stream(server: PortsideProcess) -> tuple[socket.socket, bytearray, bytes]:
    stream = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    stream.sendall(f"GET /ui/api/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65536)
        if not chunk:
            raise EOFError(bytes(buffer))
        buffer.extend(chunk)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    # The body is chunked: each frame is written at once, so a chunk-size line only ever precedes
    # a frame's first line and _read_event skips it with the other lines that are not ``data:``.
    return stream, bytearray(rest), head


def test_the_stream_follows_changes_and_ends_when_the_server_stops(tmp_path: Path, docker_client: Any) -> None:
    process = PortsideProcess(tmp_path / "state")
    process.start()
    stream = None
    try:
        stream, buffer, head = _open_stream(process)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        first = _read_event(stream, buffer)
        assert "streamed" not in [c["name"] for c in first["clusters"]]
        process.client().create_cluster(clusterName="streamed")
        seen = first
        for _ in range(20):  # bounded: each event is a change; the new cluster is among the next few
            if "streamed" in [c["name"] for c in seen["clusters"]]:
                break
            seen = _read_event(stream, buffer)
        assert "streamed" in [c["name"] for c in seen["clusters"]]
        process.stop()
        assert process.wait_exit() == 0
        with pytest.raises(EOFError):  # the stream ended with the server, it did not hang it
            for _ in range(100):
                _read_event(stream, buffer)
    finally:
        if stream is not None:
            stream.close()
        process.stop()
        remove_server_containers(docker_client, process)


def test_the_number_of_streams_is_bounded(server: PortsideProcess) -> None:
    from portside.ui.live import MAX_STREAMS

    streams: list[socket.socket] = []
    try:
        for _ in range(MAX_STREAMS):
            stream, buffer, head = _open_stream(server)
            streams.append(stream)
            assert head.startswith(b"HTTP/1.1 200")
        refused = call(server, "GET", "/ui/api/events")
        assert refused.status == 503 and refused.json()["__type"] == "LimitExceededException"
        streams.pop().close()
        eventually(lambda: call(server, "GET", "/ui/api/state").status == 200)

        def another_opens() -> bool:
            stream, _buffer, head = _open_stream(server)
            streams.append(stream)
            return head.startswith(b"HTTP/1.1 200")

        eventually(another_opens, what="a stream slot freed by a closed stream")
    finally:
        for stream in streams:
            stream.close()


def test_signing_in_with_credentials_when_loopback_is_not_trusted(tmp_path: Path, docker_client: Any) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    process = PortsideProcess(tmp_path / "state", "--auth", "always", "--credentials", str(credentials))
    process.start()
    try:
        page = call(process, "GET", "/ui")
        assert page.status == 303 and page.headers["Location"] == "/ui/signin" and not page.cookie()
        for path in ("/ui/api/state", "/ui/api/events", "/ui/api/session", "/ui/api/logs?task=x"):
            assert call(process, "GET", path).status == 403, path
        signin = call(process, "GET", "/ui/signin")
        assert signin.status == 200 and b'name="secretKey"' in signin.body
        form = {"Origin": own_origin(process), "Content-Type": "application/x-www-form-urlencoded"}
        wrong = call(process, "POST", "/ui/signin", form, urlencode({"accessKey": KEY, "secretKey": "not-it"}).encode())
        assert wrong.status == 403 and not wrong.cookie() and b"not in this server" in wrong.body
        unknown = call(process, "POST", "/ui/signin", form, urlencode({"accessKey": "AKIDOTHER", "secretKey": SECRET}).encode())
        assert unknown.status == 403 and not unknown.cookie()
        empty = call(process, "POST", "/ui/signin", form, urlencode({"accessKey": KEY}).encode())
        assert empty.status == 400 and not empty.cookie()
        huge = call(process, "POST", "/ui/signin", form, urlencode({"accessKey": KEY, "secretKey": "x" * 5000}).encode())
        assert huge.status == 400 and huge.json()["__type"] == "SerializationException" and not huge.cookie()
        good = urlencode({"accessKey": KEY, "secretKey": SECRET}).encode()
        no_origin = call(process, "POST", "/ui/signin", {"Content-Type": "application/x-www-form-urlencoded"}, good)
        assert no_origin.status == 403 and not no_origin.cookie()  # no sign-in forced on a browser by another site
        signed_in = call(process, "POST", "/ui/signin", form, good)
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/ui"
        cookie = signed_in.cookie()
        assert cookie
        assert call(process, "GET", "/ui", {"Cookie": cookie}).status == 200
        assert call(process, "GET", "/ui/api/state", {"Cookie": cookie}).status == 200
        assert call(process, "GET", "/ui/api/session", {"Cookie": cookie}).json()["accessKey"] == KEY
        assert call(process, "GET", "/ui/api/state", {"Cookie": "portside_session=forged"}).status == 403
        signed_out = call(process, "POST", "/ui/signout", {"Cookie": cookie, "Origin": own_origin(process)})
        assert signed_out.status == 303
        assert call(process, "GET", "/ui/api/state", {"Cookie": cookie}).status == 403
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


FETCH = """
import sys, urllib.request, urllib.error
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(NoRedirect)
for path in sys.argv[2:]:
    try:
        status = opener.open(sys.argv[1] + path, timeout=20).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    print(path, status)
"""


@pytest.mark.netns
def test_off_loopback_the_views_need_a_sign_in(tmp_path: Path, outside: OutsideHost, docker_client: Any) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    process = PortsideProcess(tmp_path / "state", "--credentials", str(credentials))
    process.extra_args += ["--api", f"0.0.0.0:{process.port}"]  # the last --api wins: every address
    process.start()
    try:
        remote = f"http://{outside.host_ip}:{process.port}"
        result = outside.run(sys.executable, "-c", FETCH, remote, "/ui", "/ui/api/state", "/ui/api/events", "/ui/signin")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:4] == ["/ui 303", "/ui/api/state 403", "/ui/api/events 403", "/ui/signin 200"]
        assert call(process, "GET", "/ui/api/state").status == 200  # while loopback still opens them
    finally:
        process.stop()
        remove_server_containers(docker_client, process)
