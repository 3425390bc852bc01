"""CPU and memory of a real container, read from this machine's real cgroup layout (agent/usage.py).

The container is found as the agent finds it, through Docker (``DockerDriver.inspect`` →
``State.Pid`` → ``/proc/<pid>/cgroup``); the readings are checked against Docker's own stats of the
same container, taken between two of ours (CPU only grows), so no timing is assumed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from portside.agent.docker_driver import DockerDriver
from portside.agent.usage import CgroupReader
from portside.core import cgroups
from tests.conftest import TEST_LABELS
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
#: A shell that holds 20 MB in a variable, then spins: busy CPU and memory in use.
BUSY = ["sh", "-c", "x=$(yes | head -c 20000000); while :; do :; done"]


def host_cgroup_version() -> int:
    """2 on a pure cgroup v2 host; 1 where v1 holds the controllers (v1 and the hybrid layout)."""
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def test_a_busy_container_reads_cpu_and_memory_on_this_machines_layout(docker_client: Any, busybox_image: str) -> None:
    container = docker_client.containers.run(busybox_image, BUSY, detach=True, labels=TEST_LABELS, mem_limit="64m")
    driver = DockerDriver("usage-test")
    try:
        state = asyncio.run(driver.inspect(container.id))
        assert state is not None and state.pid > 0
        reader = CgroupReader()
        dirs = reader.locate(state.pid)
        assert set(dirs) == {cgroups.CPU, cgroups.MEMORY}
        assert {d.version for d in dirs.values()} == {host_cgroup_version()}
        first = reader.read(dirs)
        assert first.cpu_ns is not None
        # the shell holds its 20 MB once the command substitution is done
        held = eventually(lambda: (u := reader.read(dirs)).memory_bytes and u.memory_bytes >= 16 * MIB and u,
                          timeout=60, what="20 MB in use")
        stats = container.stats(stream=False)
        after = reader.read(dirs)
        assert after.cpu_ns is not None and first.cpu_ns is not None
        assert after.cpu_ns > first.cpu_ns > 0  # spinning: CPU time grows
        docker_cpu = stats["cpu_stats"]["cpu_usage"]["total_usage"]
        assert first.cpu_ns <= docker_cpu <= after.cpu_ns
        memory = stats["memory_stats"]
        inactive = memory["stats"].get("total_inactive_file", memory["stats"].get("inactive_file", 0))
        docker_memory = memory["usage"] - inactive  # what `docker stats` shows
        assert held.memory_bytes is not None and after.memory_bytes is not None and after.memory_bytes >= 16 * MIB
        assert abs(docker_memory - after.memory_bytes) < 4 * MIB, (docker_memory, after.memory_bytes)
    finally:
        container.remove(force=True)
        driver.close()


def test_a_container_that_is_not_running_has_no_cgroup(docker_client: Any, busybox_image: str) -> None:
    container = docker_client.containers.create(busybox_image, ["true"], labels=TEST_LABELS)
    driver = DockerDriver("usage-test")
    try:
        state = asyncio.run(driver.inspect(container.id))
        assert state is not None and state.pid == 0
        assert CgroupReader().locate(state.pid) == {}
    finally:
        container.remove(force=True)
        driver.close()
