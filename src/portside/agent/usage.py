"""CPU and memory use of this host's containers, read from their cgroups (no Docker stats call: those take 1-2 s each).

The container's cgroup is found through Docker: its main process (``State.Pid``, which the driver
reports) names it in ``/proc/<pid>/cgroup``, and ``/proc/self/mountinfo`` says where each
hierarchy is mounted; ``core/cgroups.py`` joins the two and reads the counters, for cgroup v1,
v2 and the hybrid layout, whatever the cgroup driver (cgroupfs or systemd) or parent. A container
keeps its process and so its cgroup for its whole life, so the directories are looked up once per
container and then only its counter files are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from portside.core import cgroups
from portside.core.cgroups import CgroupDir

PROC = Path("/proc")


@dataclass(frozen=True)
class Usage:
    """A container's counters now: cumulative CPU nanoseconds and memory in use (None: not readable)."""

    cpu_ns: int | None
    memory_bytes: int | None


class CgroupReader:
    """Reads containers' cgroups; ``proc`` and ``root`` move it onto a fixture tree in tests."""

    def __init__(self, proc: Path = PROC, root: Path = Path("/")) -> None:
        self.proc = proc
        self.root = root

    def locate(self, pid: int) -> dict[str, CgroupDir]:
        """The counter directories (``cgroups.CPU``, ``cgroups.MEMORY``) of process ``pid``; {} when it is gone."""
        if pid <= 0:
            return {}
        try:
            memberships = (self.proc / str(pid) / "cgroup").read_text()
            mounts = (self.proc / "self" / "mountinfo").read_text()
        except OSError:
            return {}
        return cgroups.locate(cgroups.parse_memberships(memberships), cgroups.parse_mounts(mounts))

    def read(self, dirs: dict[str, CgroupDir]) -> Usage:
        """The counters now; a resource whose files are missing or do not read is None."""
        cpu = memory = None
        where = dirs.get(cgroups.CPU)
        if where is not None:
            try:
                (stat,) = self._texts(where.files(cgroups.CPU))
                cpu = cgroups.cpu_ns(where.version, stat)
            except (OSError, ValueError):
                cpu = None
        where = dirs.get(cgroups.MEMORY)
        if where is not None:
            try:
                usage, stat = self._texts(where.files(cgroups.MEMORY))
                memory = cgroups.memory_bytes(where.version, usage, stat)
            except (OSError, ValueError):
                memory = None
        return Usage(cpu, memory)

    def _texts(self, paths: tuple[PurePosixPath, ...]) -> list[str]:
        return [(self.root / str(path).lstrip("/")).read_text() for path in paths]
