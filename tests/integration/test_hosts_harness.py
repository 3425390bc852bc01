"""The many-hosts harness (tests/support/hosts.py) on real namespaces and real Docker Engines."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import host_leftovers
from tests.support.hosts import (
    Cluster, Host, instance_id_for, machine_can_run_hosts, take_range_lock,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]


def _root_get(address: str, port: int, path: str = "/cgi-bin/whoami", timeout: float = 1.0) -> str | None:
    """The body a GET from the root namespace gets, or None when nothing answers."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def _start_web(host: Host, image: str) -> tuple[Any, int]:
    """A busybox httpd on ``host`` with container port 80 published on a port Docker chooses."""
    container = host.docker().containers.run(
        image, detach=True, ports={"80/tcp": None}, hostname=f"web-{host.name}"
    )
    container.reload()
    return container, int(container.ports["80/tcp"][0]["HostPort"])


def test_instance_ids_are_stable_distinct_and_ec2_shaped() -> None:
    ids = [instance_id_for(name) for name in "abc"]
    assert ids == [instance_id_for(name) for name in "abc"]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"i-[0-9a-f]{17}", i) for i in ids)


def test_a_foreign_route_to_the_range_makes_the_harness_skip(hosts_machine: None) -> None:
    assert machine_can_run_hosts() is None
    link = f"phx{os.getpid()}"
    lock = take_range_lock()
    try:
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p"], check=True)
        subprocess.run(["ip", "addr", "add", "10.250.0.250/24", "dev", link], check=True)
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        why = machine_can_run_hosts()
        assert why is not None and "10.250.0.0/24 is already routed" in why and link in why
    finally:
        subprocess.run(["ip", "link", "del", link], check=False, capture_output=True)
        lock.close()
    assert machine_can_run_hosts() is None


def test_three_hosts_publish_dynamic_ports_on_their_own_addresses(
    make_cluster: Any, busybox_image: str
) -> None:
    cluster: Cluster = make_cluster(3)
    a, b, c = cluster.hosts
    assert [h.address for h in cluster.hosts] == ["10.250.0.11", "10.250.0.12", "10.250.0.13"]
    assert len({h.instance_id for h in cluster.hosts}) == 3
    assert machine_can_run_hosts() is None  # a harness's own route (psh<pid>r) is no reason to skip
    webs = {host.name: _start_web(host, busybox_image) for host in cluster.hosts}
    for host in cluster.hosts:
        port = webs[host.name][1]
        assert port > 0
        answer = eventually(
            lambda h=host, p=port: _root_get(h.address, p), timeout=15, what=f"web on {host.name}"
        )
        assert answer == f"web-{host.name}\n"
        # the address is the host's own, inside its namespace
        assert host.run("ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3] == f"{host.address}/24"
    # host to host, through the switch
    b_port = webs["b"][1]
    assert a.http_get(b.address, b_port, "/cgi-bin/whoami") == ("HTTP/1.1 200 OK", "web-b\n")
    assert c.http_get(a.address, webs["a"][1], "/cgi-bin/whoami") == ("HTTP/1.1 200 OK", "web-a\n")


def test_partition_cuts_a_host_off_and_heal_brings_it_back(make_cluster: Any, busybox_image: str) -> None:
    cluster: Cluster = make_cluster(2)
    a, b = cluster.hosts
    container, port = _start_web(b, busybox_image)
    eventually(lambda: _root_get(b.address, port), timeout=15, what="web on b")

    b.partition()
    assert _root_get(b.address, port) is None
    assert a.http_get(b.address, port, "/cgi-bin/whoami", timeout=1.0) is None
    container.reload()
    assert container.status == "running"
    # still serving, inside its own namespace
    assert b.http_get(b.address, port, "/cgi-bin/whoami") == ("HTTP/1.1 200 OK", "web-b\n")

    b.heal()
    healed = eventually(lambda: _root_get(b.address, port), timeout=15, what="b reachable after heal")
    assert healed == "web-b\n"
    assert eventually(lambda: a.http_get(b.address, port, "/cgi-bin/whoami"), timeout=15, what="a reaches b")


def test_teardown_after_a_killed_engine_leaves_nothing_behind(make_cluster: Any, busybox_image: str) -> None:
    cluster: Cluster = make_cluster(1)
    (host,) = cluster.hosts
    container, port = _start_web(host, busybox_image)
    container_pid = container.attrs["State"]["Pid"]
    eventually(lambda: _root_get(host.address, port), timeout=15, what="web on a")

    # a stray in the namespace whose command line names nothing of the host's
    stray = subprocess.Popen(["nsenter", f"--net=/run/netns/{host.netns}", "sleep", "300"])
    host.kill_engine()
    assert host.engine_pids() == []
    left = host_leftovers.leftovers(cluster.tag)
    assert any("containerd-shim" in p for p in left.processes), left  # a crash leaves the shim...
    assert _root_get(host.address, port) == "web-a\n"  # ...and the copy serving
    assert left.mounts and left.namespaces and left.links and left.folders and left.cgroups

    cluster.close()
    assert not host_leftovers.leftovers(cluster.tag), host_leftovers.leftovers(cluster.tag)
    assert _dead(container_pid)
    assert stray.wait(timeout=10) == -9


def _dead(pid: int) -> bool:
    """Gone, or a zombie its new parent (pid 1, after the shim died) has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


CHILD_CONFTEST = """
from tests.conftest import busybox_image, docker_client  # noqa: F401
from tests.support.hosts import hosts_machine, make_cluster  # noqa: F401
"""

CHILD_TEST = """
import json, os
from tests.support import host_leftovers

def test_raises_midway(make_cluster, busybox_image):
    cluster = make_cluster(2)
    host = cluster.hosts[0]
    host.docker().containers.run(busybox_image, detach=True, ports={"80/tcp": None})
    left = host_leftovers.leftovers(cluster.tag)
    with open(os.environ["HARNESS_REPORT"], "w") as report:
        json.dump({"tag": cluster.tag, "pid": os.getpid(), "processes": len(left.processes),
                   "namespaces": left.namespaces}, report)
    raise RuntimeError("midway")
"""


def test_a_test_that_raises_midway_leaves_nothing_behind(hosts_machine: None, tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CHILD_CONFTEST)
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    report = tmp_path / "report.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_child.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "HARNESS_REPORT": str(report)},
    )
    try:
        output = _finish(child, timeout=180)
        assert child.returncode == 1, output
        assert "RuntimeError: midway" in output
        seen = json.loads(report.read_text())
        assert seen["tag"] == f"psh{child.pid}"
        assert seen["processes"] > 0 and len(seen["namespaces"]) == 3  # the child really made hosts
        assert not host_leftovers.leftovers(seen["tag"]), host_leftovers.leftovers(seen["tag"])
    finally:
        host_leftovers.remove_tag(f"psh{child.pid}")


def _finish(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's output once it exits; killed (and its output returned) after ``timeout`` s."""
    try:
        return child.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        child.kill()
        return child.communicate()[0]


CRASHING_RUN = """
import docker, os, signal, sys
from tests.support.hosts import Cluster
cluster = Cluster()
cluster.open()
(host,) = cluster.add_hosts(1, images=(sys.argv[1],), image_source=docker.from_env())
host.docker().containers.run(sys.argv[1], detach=True, ports={"80/tcp": None})
print(cluster.tag, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_session_sweep_removes_what_a_crashed_run_left(hosts_machine: None, busybox_image: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, busybox_image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    tag = f"psh{child.pid}"
    try:
        output = _finish(child, timeout=120)
        assert child.returncode == -9, output
        assert output.strip() == tag
        left = host_leftovers.leftovers(tag)
        assert left.processes and left.mounts and left.namespaces and left.links and left.folders, left
        assert tag in host_leftovers.sweep_dead_runs()
        assert not host_leftovers.leftovers(tag), host_leftovers.leftovers(tag)
    finally:
        host_leftovers.remove_tag(tag)
