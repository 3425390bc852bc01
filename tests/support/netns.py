"""A second "host" for tests: a network namespace joined to this one by a veth pair.

Addresses are assigned only to the veth ends the test creates, from a /30 in
10.213.0.0/16 chosen per test run; traffic never leaves the pair.
"""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass


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
