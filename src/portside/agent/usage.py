"""CPU and memory use of containers, read from cgroup v1 files (no Docker stats call: those take 1-2 s each).

CPU is the cumulative ``cpuacct.usage`` in nanoseconds (the caller takes the
difference between two samples); memory is ``memory.usage_in_bytes`` less the
inactive page cache (``total_inactive_file``), as ``docker stats`` reports it.
Both the cgroupfs (``docker/<id>``) and systemd (``system.slice/docker-<id>.scope``)
layouts are looked up.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _dir(controller: str, container_id: str, root: Path) -> Path | None:
    for relative in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
        path = root / controller / relative
        if path.is_dir():
            return path
    return None


def cpu_ns(container_id: str, root: Path = CGROUP_ROOT) -> int | None:
    path = _dir("cpuacct", container_id, root)
    try:
        return int((path / "cpuacct.usage").read_text()) if path else None
    except (OSError, ValueError):
        return None


def memory_bytes(container_id: str, root: Path = CGROUP_ROOT) -> int | None:
    path = _dir("memory", container_id, root)
    if path is None:
        return None
    try:
        usage = int((path / "memory.usage_in_bytes").read_text())
        inactive = 0
        for line in (path / "memory.stat").read_text().splitlines():
            if line.startswith("total_inactive_file "):
                inactive = int(line.split()[1])
                break
        return max(usage - inactive, 0)
    except (OSError, ValueError):
        return None
