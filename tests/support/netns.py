"""A second "host" for tests: a network namespace joined to this one by a veth pair.

Addresses are assigned only to the veth ends the test creates, from a /30 in
10.213.0.0/16 chosen per test run; traffic never leaves the pair.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAW_SYN = str(Path(__file__).with_name("raw_syn.py"))
PROBE = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.settimeout(float(sys.argv[3]))
    s.sendall(b"GET / HTTP/1.0\\r\\nHost: probe\\r\\n\\r\\n")
    print("ANSWER", s.recv(64).split(b"\\r\\n")[0].decode(errors="replace"))
except OSError as exc:
    print("NOANSWER", exc)
"""

GET_PROBE = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.settimeout(float(sys.argv[3]))
    s.sendall(b"GET " + sys.argv[4].encode() + b" HTTP/1.0\\r\\nHost: probe\\r\\n\\r\\n")
    answer = b""
    while len(answer) < 65536:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\\r\\n\\r\\n")
    print("ANSWER", head.split(b"\\r\\n")[0].decode(errors="replace"))
    sys.stdout.write(body.decode(errors="replace"))
except OSError as exc:
    print("NOANSWER", exc)
"""


def http_get_from(
    run: Callable[..., subprocess.CompletedProcess[str]], host: str, port: int, path: str = "/",
    timeout: float = 2.0,
) -> tuple[str, str] | None:
    """(status line, body) of an HTTP/1.0 ``GET path`` sent from where ``run`` runs (the server
    closes after answering); None when nothing answers in ``timeout`` seconds."""
    argv = (sys.executable, "-c", GET_PROBE, host, str(port), str(timeout), path)
    out = run(*argv, timeout=timeout * 3 + 10).stdout
    if not out.startswith("ANSWER"):
        return None
    first, _, body = out.partition("\n")
    return first.split(" ", 1)[1].strip(), body


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_available() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        return _ip("netns", "list", check=False).returncode == 0
    except FileNotFoundError:
        return False


@dataclass
class OutsideHost:
    name: str
    host_ip: str  # this host's end of the veth
    outside_ip: str  # the namespace's end

    def run(self, *argv: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def spawn(self, *argv: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        """A long-running process inside the namespace; the caller waits for it (and kills it on failure)."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], stdout=stdout, stderr=subprocess.PIPE, text=True)

    def http_status(self, host: str, port: int, timeout: float = 2.0) -> str | None:
        """The status line an HTTP server at host:port sends this namespace, or None when nothing answers."""
        out = self.run(sys.executable, "-c", PROBE, host, str(port), str(timeout), timeout=timeout * 3 + 10).stdout
        return out.split(" ", 1)[1].strip() if out.startswith("ANSWER") else None

    def route_via_host(self, subnet: str) -> None:
        """Send ``subnet`` (e.g. Docker's bridge subnet) to this host, as a neighbour on its link could."""
        _ip("netns", "exec", self.name, "ip", "route", "replace", subnet, "via", self.host_ip)

    def raw_syn(self, dst_ip: str, port: int) -> str:
        """SYN to dst_ip:port sent straight onto the link (works for 127.0.0.1): SYNACK, RST or NONE."""
        host_mac = Path(f"/sys/class/net/{self.name}-h/address").read_text().strip()
        # This host answers ARP only for its own addresses; a reply from 127.0.0.1 needs the neighbour pinned.
        own_mac = self.run("cat", f"/sys/class/net/{self.name}-o/address").stdout.strip()
        _ip("neigh", "replace", self.outside_ip, "lladdr", own_mac, "dev", f"{self.name}-h", "nud", "permanent")
        result = self.run(sys.executable, RAW_SYN, f"{self.name}-o", host_mac, self.outside_ip, dst_ip, str(port))
        if result.returncode != 0:
            raise RuntimeError(f"raw_syn failed: {result.stderr}")
        return result.stdout.strip()

    def close(self) -> None:
        _ip("link", "del", f"{self.name}-h", check=False)
        _ip("netns", "del", self.name, check=False)


def make_outside_host() -> OutsideHost:
    suffix = f"{os.getpid() % 10000}{random.randint(0, 99)}"
    name = f"pst{suffix}"
    block = random.randint(1, 60) * 4
    third = random.randint(0, 255)
    host_ip, outside_ip = f"10.213.{third}.{block + 1}", f"10.213.{third}.{block + 2}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", f"{name}-h", "type", "veth", "peer", "name", f"{name}-o")
        _ip("link", "set", f"{name}-o", "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", f"{name}-h")
        _ip("link", "set", f"{name}-h", "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{outside_ip}/30", "dev", f"{name}-o")
        _ip("netns", "exec", name, "ip", "link", "set", f"{name}-o", "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError:
        OutsideHost(name, host_ip, outside_ip).close()
        raise
    return OutsideHost(name, host_ip, outside_ip)
