"""Several hosts on this one machine, each with its own address and its own Docker Engine.

Theory of operation
-------------------
A *cluster* is a switch plus hosts, all network namespaces named after the test run's tag
``psh<pid>`` (see tests/support/host_leftovers.py)::

    root namespace              psh<pid>-switch                   psh<pid>-a
    psh<pid>r 10.250.0.1 ─veth─ uplink ┐                 ┌ port-a ─veth─ eth0 10.250.0.11/24
                                       ├ bridge "switch" ┤               docker0 172.31.11.1/24
                                                         └ port-b ─veth─ eth0 10.250.0.12/24 ...

The bridge lives in a namespace of its own: in the root namespace br_netfilter would hand the
hosts' frames to Docker's FORWARD chain, whose policy is DROP. The root namespace reaches the
hosts over its own veth into the switch, so tests (and a control plane) in the root namespace
talk to 10.250.0.11, .12, ... directly. Nothing is routed anywhere else.

Each host runs ``dockerd`` inside its namespace (``nsenter --net``) with its own data root,
exec root, socket, pid file, bridge (``--bip``: 172.31.11.1/24 for a, .12 for b, ...),
managed containerd under the exec root, ``--cgroup-parent psh<pid>-<host>``, an empty config
file (never the machine's ``/etc/docker/daemon.json``), iptables on (inside the namespace) and
no userland proxy. Ports a container publishes land on the host's address. Images come from
the machine's engine (``docker save`` -> ``load``).

Scenarios: ``Host.partition()`` / ``heal()`` take the host's port on the switch down / up;
``Host.kill_engine()`` SIGKILLs dockerd and its containerd and leaves the shims and containers
running, as a crash does; ``Host.run(...)`` runs a command in the namespace. Every namespace
shares ``/etc/machine-id``, so ``Host.instance_id`` is derived from the host's name.

Teardown (``Cluster.close()``, run by the ``make_cluster`` fixture even when the test fails)
kills every process of a host (by folder, namespace, cgroup and descent), unmounts what the
engine left under its folder, removes its cgroups, folder and namespace, then the switch and
the root link. ``hosts_machine`` (session) skips where the machine cannot do this and first
sweeps what crashed runs left. The address range is one per machine, so a cluster holds an
exclusive lock (``/run/lock/portside-test-hosts.lock``) while it lives; a route to the range
through anything but a harness's own link makes the tests skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support import host_leftovers
from tests.support.netns import http_get_from, netns_available

SUBNET_PREFIX = "10.250.0"
ROOT_ADDRESS = f"{SUBNET_PREFIX}.1"
FIRST_HOST_OCTET = 11
MAX_HOSTS = 26
LOCK_PATH = Path("/run/lock/portside-test-hosts.lock")
LOCK_TIMEOUT_S = 300.0
ENGINE_START_TIMEOUT_S = 60.0
HOST_NAMES = "abcdefghijklmnopqrstuvwxyz"


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def instance_id_for(name: str) -> str:
    """A stable EC2-shaped instance id (``i-`` + 17 hex digits) derived from a host name."""
    return "i-" + hashlib.sha256(f"portside-test-host:{name}".encode()).hexdigest()[:17]


def machine_can_run_hosts() -> str | None:
    """Why this machine cannot run the harness, or None when it can."""
    if not netns_available():
        return "needs root and `ip netns`"
    for tool in ("dockerd", "nsenter", "umount"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    for route in _ip("route", "show", f"{SUBNET_PREFIX}.0/24", check=False).stdout.splitlines():
        device = route.split(" dev ")[1].split()[0] if " dev " in route else ""
        if not host_leftovers.TAG_PATTERN.match(device):  # a harness's own link is no reason
            return f"{SUBNET_PREFIX}.0/24 is already routed on this machine ({route.strip()})"
    return None


@dataclass
class Host:
    """One host of a cluster: a namespace on the switch with its own Docker Engine."""

    name: str
    index: int
    tag: str
    folder: Path
    engine: subprocess.Popen[bytes] | None = None
    _clients: list[Any] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"{self.tag}-{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{FIRST_HOST_OCTET + self.index}"

    @property
    def instance_id(self) -> str:
        return instance_id_for(self.name)

    @property
    def bridge_cidr(self) -> str:
        return f"172.31.{FIRST_HOST_OCTET + self.index}.1/24"

    @property
    def socket_path(self) -> Path:
        return self.folder / "docker.sock"

    @property
    def docker_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def switch_port(self) -> str:
        return f"port-{self.name}"

    @property
    def cgroup_parent(self) -> str:
        return self.netns

    def run(self, *argv: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this host's network namespace."""
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", *argv],
            capture_output=True, text=True, timeout=timeout, check=check,
        )

    def http_get(
        self, address: str, port: int, path: str = "/", timeout: float = 2.0
    ) -> tuple[str, str] | None:
        """(status line, body) of ``GET path`` sent from this host, or None when nothing answers."""
        return http_get_from(self.run, address, port, path, timeout)

    def docker(self) -> Any:
        """A docker.DockerClient for this host's engine (closed with the cluster)."""
        import docker

        client = docker.DockerClient(base_url=self.docker_url, timeout=60)
        self._clients.append(client)
        return client

    # ------------------------------------------------------------------ engine

    def start_engine(self) -> None:
        data, exec_root = self.folder / "data", self.folder / "exec"
        for d in (data, exec_root):
            d.mkdir(parents=True, exist_ok=True)
        config = self.folder / "daemon.json"
        config.write_text("{}\n")
        log = open(self.folder / "dockerd.log", "ab")
        argv = [
            "nsenter", f"--net=/run/netns/{self.netns}", shutil.which("dockerd") or "dockerd",
            "--config-file", str(config), "--data-root", str(data), "--exec-root", str(exec_root),
            "-H", self.docker_url, "--pidfile", str(self.folder / "dockerd.pid"),
            "--bip", self.bridge_cidr, "--userland-proxy=false", "--iptables=true",
            "--cgroup-parent", f"/{self.cgroup_parent}",
        ]
        try:
            self.engine = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        self.wait_for_engine()

    def wait_for_engine(self, timeout: float = ENGINE_START_TIMEOUT_S) -> None:
        import docker

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.engine is not None and self.engine.poll() is not None:
                break
            if self.socket_path.exists():
                client = docker.DockerClient(base_url=self.docker_url, timeout=5)
                try:
                    client.ping()
                    return
                except (docker.errors.DockerException, OSError) as exc:  # not listening yet
                    last = exc
                finally:
                    client.close()
            time.sleep(0.2)
        tail = (self.folder / "dockerd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"engine of host {self.name} did not answer in {timeout} s ({last!r}); log:\n{tail}"
        )

    def engine_pids(self) -> list[int]:
        """dockerd and its containerd (not the shims) of this host."""
        return [
            pid for pid, cmd in host_leftovers.commands_naming(self.folder)
            if "containerd-shim" not in cmd and not cmd.startswith("nsenter")
        ]

    def kill_engine(self) -> None:
        """SIGKILL dockerd and its containerd, as a crash would; shims and containers keep running."""
        left = host_leftovers.kill_and_wait(self.engine_pids())
        if left:
            raise RuntimeError(f"engine processes {left} of host {self.name} outlived SIGKILL")
        if self.engine is not None:
            self.engine.wait(timeout=10)

    def load_images(self, source: Any, tags: tuple[str, ...]) -> None:
        """Copy images from the docker client ``source`` (docker save -> load)."""
        client = self.docker()
        for tag in tags:
            client.images.load(b"".join(source.images.get(tag).save(named=True)))

    # ------------------------------------------------------------------ network

    def partition(self) -> None:
        """Cut this host off the switch: no traffic to or from the root namespace or other hosts."""
        _ip("link", "set", self.switch_port, "down", netns=f"{self.tag}-switch")

    def heal(self) -> None:
        _ip("link", "set", self.switch_port, "up", netns=f"{self.tag}-switch")

    def plug_in(self) -> None:
        switch = f"{self.tag}-switch"
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.switch_port, "type", "veth", "peer", "name", "eth0", "netns", self.netns,
            netns=switch)
        _ip("link", "set", self.switch_port, "master", "switch", "up", netns=switch)
        _ip("addr", "add", f"{self.address}/24", "dev", "eth0", netns=self.netns)
        _ip("link", "set", "eth0", "up", netns=self.netns)
        _ip("link", "set", "lo", "up", netns=self.netns)

    def close(self) -> None:
        """Kill everything the host runs, unmount, and remove its cgroups, folder and namespace."""
        for client in self._clients:
            client.close()  # closes its connection pool; talks to no engine
        self._clients.clear()
        processes = host_leftovers.host_processes(self.folder, self.netns, [self.cgroup_parent])
        host_leftovers.kill_and_wait(processes)
        if self.engine is not None:
            try:
                self.engine.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        host_leftovers.unmount_all(self.folder)
        for cgroup in host_leftovers.cgroup_dirs(self.cgroup_parent):
            if cgroup.name == self.cgroup_parent:
                host_leftovers.remove_cgroup(cgroup)
        shutil.rmtree(self.folder, ignore_errors=True)
        _ip("netns", "del", self.netns, check=False)


class Cluster:
    """A switch, a link from the root namespace, and hosts named a, b, c, ..."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or host_leftovers.session_tag()
        self.folder = host_leftovers.hosts_base_dir() / self.tag
        self.hosts: list[Host] = []
        self._lock: Any = None

    @property
    def switch(self) -> str:
        return f"{self.tag}-switch"

    def open(self) -> None:
        self._take_lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self.switch)
        _ip("link", "add", "switch", "type", "bridge", netns=self.switch)
        _ip("link", "set", "switch", "up", netns=self.switch)
        _ip("link", "set", "lo", "up", netns=self.switch)
        _ip("link", "add", f"{self.tag}r", "type", "veth", "peer", "name", "uplink", "netns", self.switch)
        _ip("link", "set", "uplink", "master", "switch", "up", netns=self.switch)
        _ip("addr", "add", f"{ROOT_ADDRESS}/24", "dev", f"{self.tag}r")
        _ip("link", "set", f"{self.tag}r", "up")

    def add_hosts(self, count: int, images: tuple[str, ...] = (), image_source: Any = None) -> list[Host]:
        """Add ``count`` hosts, start their engines and copy ``images`` into each."""
        if len(self.hosts) + count > MAX_HOSTS:
            raise ValueError(
                f"count: a cluster has at most {MAX_HOSTS} hosts, asked for {len(self.hosts) + count}"
            )
        added = []
        for _ in range(count):
            index = len(self.hosts)
            host = Host(HOST_NAMES[index], index, self.tag, self.folder / HOST_NAMES[index])
            self.hosts.append(host)
            host.folder.mkdir(parents=True)
            host.plug_in()
            added.append(host)
        for host in added:
            host.start_engine()
        for host in added:
            if images:
                host.load_images(image_source, images)
        return added

    def close(self) -> None:
        """Tear everything down; safe to call after any failure, and more than once."""
        errors: list[Exception] = []
        for host in reversed(self.hosts):
            try:
                host.close()
            except Exception as exc:  # the other hosts and the switch still go
                errors.append(exc)
        try:
            host_leftovers.remove_tag(self.tag)  # whatever a half-made host or the switch left
        finally:
            self.hosts = []
            if self._lock is not None:
                self._lock.close()
                self._lock = None
        if errors:
            raise errors[0]

    def _take_lock(self) -> None:
        self._lock = take_range_lock()


def take_range_lock(timeout: float = LOCK_TIMEOUT_S) -> IO[str]:
    """The machine-wide lock on 10.250.0.0/24 (an open file; closing it releases the lock)."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK_PATH, "a+")  # noqa: SIM115  (held open for the cluster's life)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise RuntimeError(f"another test run held {LOCK_PATH} for {timeout} s") from None
            time.sleep(0.5)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def hosts_machine() -> None:
    """Skip when this machine cannot make hosts; sweep what crashed earlier runs left."""
    why = machine_can_run_hosts()
    if why:
        pytest.skip(f"hosts harness: {why}")
    host_leftovers.sweep_dead_runs()


@pytest.fixture
def make_cluster(
    hosts_machine: None, docker_client: Any, busybox_image: str
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(n)``: a cluster of n hosts with the busybox web image loaded; torn down
    when the test ends, however it ends. One cluster per test."""
    made: list[Cluster] = []

    def make(count: int, images: tuple[str, ...] | None = None) -> Cluster:
        if made:
            raise RuntimeError("one cluster per test (the address range is shared)")
        cluster = Cluster()
        made.append(cluster)
        cluster.open()
        wanted = (busybox_image,) if images is None else images
        cluster.add_hosts(count, images=wanted, image_source=docker_client)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


__all__ = [
    "Cluster", "Host", "hosts_machine", "instance_id_for", "machine_can_run_hosts", "make_cluster",
    "take_range_lock",
]
