"""The FROM-scratch test images build, serve, keep connections alive and get OOM-killed."""

from __future__ import annotations

import http.client
import time
import uuid
from typing import Any

import pytest

docker = pytest.importorskip("docker")


def _engine_error() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        return str(exc)
    return None


_ERROR = _engine_error()
if _ERROR is not None:
    pytest.skip(f"Docker Engine unreachable: {_ERROR}", allow_module_level=True)

from portside import images  # noqa: E402
from portside.errors import DriverError  # noqa: E402

pytestmark = pytest.mark.docker

PUBLISH_80 = {"80/tcp": ("127.0.0.1", None)}  # -p 127.0.0.1::80


# --------------------------------------------------------------------------- helpers


def host_port(container: Any, port: str = "80/tcp") -> int:
    deadline = time.monotonic() + 10
    while True:
        container.reload()
        bindings = (container.ports or {}).get(port)
        if bindings:
            return int(bindings[0]["HostPort"])
        if container.status not in ("created", "running") or time.monotonic() > deadline:
            raise AssertionError(f"{port} not published: {container.status} {container.logs()!r}")
        time.sleep(0.05)


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_http(port: int, path: str = "/", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(port, path, timeout=2)
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def hostname_of(container: Any) -> str:
    container.reload()
    return container.attrs["Config"]["Hostname"]


def labels_of(client: Any, tag: str) -> dict[str, str]:
    return client.images.get(tag).attrs["Config"]["Labels"] or {}


# --------------------------------------------------------------------------- building


@pytest.mark.parametrize(
    ("build", "kind"),
    [(images.build_busybox_web_image, "busybox-web"), (images.build_nginx_image, "nginx-keepalive")],
)
def test_build_then_second_call_is_a_noop(docker_client, build, kind, record_property) -> None:
    tag = f"portside/test-{kind}:{uuid.uuid4().hex[:12]}"
    try:
        started = time.perf_counter()
        assert build(docker_client, tag) == tag
        first = time.perf_counter() - started

        started = time.perf_counter()
        assert build(docker_client, tag) == tag
        second = time.perf_counter() - started
        record_property(f"{kind}_build_s", round(first, 3))
        record_property(f"{kind}_noop_s", round(second, 3))

        labels = labels_of(docker_client, tag)
        assert labels[images.IMAGE_LABEL] == kind
        assert labels[images.CONTEXT_LABEL]
        assert first < 30, f"build took {first:.1f}s"
        assert second < 0.5, f"second call took {second:.3f}s, should reuse the image"
    finally:
        try:
            docker_client.images.remove(tag)
        except docker.errors.APIError:
            pass


def test_stale_image_under_the_tag_is_rebuilt(docker_client, busybox_image) -> None:
    tag = f"portside/test-stale:{uuid.uuid4().hex[:12]}"
    docker_client.images.get(busybox_image).tag(tag)
    try:
        # Same image, same context digest: reused as is.
        assert images.build_busybox_web_image(docker_client, tag) == tag
        assert docker_client.images.get(tag).id == docker_client.images.get(busybox_image).id
        # An image from another context under the tag is replaced.
        docker_client.images.remove(tag)
        docker_client.images.get(images.build_nginx_image(docker_client)).tag(tag)
        assert images.build_busybox_web_image(docker_client, tag) == tag
        assert labels_of(docker_client, tag)[images.IMAGE_LABEL] == "busybox-web"
    finally:
        try:
            docker_client.images.remove(tag)
        except docker.errors.APIError:
            pass


def test_missing_static_busybox_is_a_driver_error(docker_client, monkeypatch) -> None:
    tag = f"portside/test-missing:{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(images, "_BUSYBOX_CANDIDATES", ("/nonexistent/busybox",))
    with pytest.raises(DriverError, match="apt-get install busybox-static"):
        images.build_busybox_web_image(docker_client, tag)
    monkeypatch.setattr(images, "_BUSYBOX_CANDIDATES", ("/usr/sbin/nginx",))  # dynamic ELF
    with pytest.raises(DriverError, match="dynamically linked.*busybox-static"):
        images.build_busybox_web_image(docker_client, tag)


def test_missing_nginx_is_a_driver_error(docker_client, monkeypatch) -> None:
    monkeypatch.setattr(images, "_NGINX_CANDIDATES", ("/nonexistent/nginx",))
    with pytest.raises(DriverError, match="apt-get install nginx-light"):
        images.build_nginx_image(docker_client, f"portside/test-missing:{uuid.uuid4().hex[:12]}")


def test_engine_failure_is_a_driver_error() -> None:
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41", timeout=2)
    with pytest.raises(DriverError) as info:
        images.build_busybox_web_image(client, "portside/test-unreachable:1")
    assert info.value.retryable
    assert not isinstance(info.value, docker.errors.DockerException)


# --------------------------------------------------------------------------- busybox-web


def test_busybox_whoami_answers_with_the_container_hostname(
    docker_client, busybox_image, run_container
) -> None:
    assert labels_of(docker_client, busybox_image)[images.IMAGE_LABEL] == "busybox-web"
    container = run_container(busybox_image, ports=PUBLISH_80, environment={"PORTSIDE_COPY": "3"})
    port = host_port(container)
    wait_http(port, "/")
    status, body = get(port, "/cgi-bin/whoami")
    assert status == 200
    assert body.splitlines() == [hostname_of(container), "copy=3"]

    status, body = get(port, "/")
    assert status == 200 and "cgi-bin/whoami" in body


def test_busybox_cgi_sleep_env_status(busybox_image, run_container) -> None:
    container = run_container(busybox_image, ports=PUBLISH_80, environment={"PORTSIDE_COPY": "x"})
    port = host_port(container)
    wait_http(port, "/")

    started = time.monotonic()
    status, body = get(port, "/cgi-bin/sleep?0.5")
    assert status == 200 and body.startswith("slept 0.5")
    assert time.monotonic() - started >= 0.5

    assert get(port, "/cgi-bin/sleep?abc")[0] == 400

    status, body = get(port, "/cgi-bin/env")
    assert status == 200
    assert "PORTSIDE_COPY=x" in body.splitlines()
    assert "QUERY_STRING=" in body.splitlines()

    assert get(port, "/cgi-bin/status?503")[0] == 503
    assert get(port, "/cgi-bin/alloc?4")[0] == 200


def test_busybox_stops_promptly_on_sigterm_after_in_flight_requests(busybox_image, run_container) -> None:
    container = run_container(busybox_image, ports=PUBLISH_80)
    port = host_port(container)
    wait_http(port, "/")

    # An idle server stops at once on SIGTERM (busybox httpd alone, as PID 1, would
    # ignore it and wait out the 10 s stop timeout).
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 5
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 143  # 128 + SIGTERM, not SIGKILL's 137


def test_busybox_in_flight_request_finishes_during_stop(busybox_image, run_container) -> None:
    import threading

    container = run_container(busybox_image, ports=PUBLISH_80)
    port = host_port(container)
    wait_http(port, "/")
    result: dict[str, Any] = {}

    def slow() -> None:
        try:
            result["answer"] = get(port, "/cgi-bin/sleep?1.5")
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.4)
    container.stop(timeout=10)
    thread.join(10)
    assert result.get("answer", (None, ""))[0] == 200, result
    with pytest.raises(OSError):
        get(port, "/", timeout=1)


def test_memory_hard_limit_oom_kills_alloc(docker_client, busybox_image, run_container) -> None:
    container = run_container(busybox_image, ports=PUBLISH_80, mem_limit="16m", memswap_limit="16m")
    port = host_port(container)
    wait_http(port, "/")
    status, body = get(port, "/cgi-bin/alloc?64")
    assert status == 500 and "awk exit 137" in body
    # The server itself survives the OOM kill of the CGI process...
    assert get(port, "/cgi-bin/alloc?2")[0] == 200
    # ...and the engine (20.10) records OOMKilled once the container has stopped.
    container.stop(timeout=5)
    container.reload()
    assert container.attrs["State"]["OOMKilled"] is True


def test_alloc_as_the_command_oom_kills_the_container(busybox_image, run_container) -> None:
    container = run_container(
        busybox_image, ["/www/cgi-bin/alloc", "64"], mem_limit="16m", memswap_limit="16m"
    )
    assert container.wait(timeout=30)["StatusCode"] == 137
    container.reload()
    assert container.attrs["State"]["OOMKilled"] is True


# --------------------------------------------------------------------------- nginx-keepalive


def test_nginx_answers_with_hostname_and_keeps_the_connection_alive(
    docker_client, nginx_image, run_container
) -> None:
    assert labels_of(docker_client, nginx_image)[images.IMAGE_LABEL] == "nginx-keepalive"
    container = run_container(nginx_image, ports=PUBLISH_80)
    port = host_port(container)
    wait_http(port, "/")
    hostname = hostname_of(container)

    status, body = get(port, "/")
    assert status == 200 and body == f"ok {hostname}\n"

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        first = conn.getresponse()
        assert first.read().decode() == f"ok {hostname}\n"
        sock = conn.sock
        assert sock is not None and first.getheader("Connection", "").lower() == "keep-alive"
        for i in range(99):
            conn.request("GET", f"/any/path/{i}")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == f"ok {hostname}\n".encode()
            assert not resp.will_close
            assert conn.sock is sock, f"connection was reopened at request {i + 2}"
    finally:
        conn.close()

    # SIGQUIT (the image's STOPSIGNAL) is nginx's graceful stop: quick when idle.
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 5
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert b"emerg" not in container.logs()
