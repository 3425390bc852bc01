"""Where a container's CPU and memory counters live, and how to read them (pure: text in, numbers out).

Theory of operation
-------------------
The agent finds a container's cgroup through Docker: the container's main process (``State.Pid``)
is a member of it, and ``/proc/<pid>/cgroup`` names it, one line per hierarchy::

    4:memory:/docker/3771f2...            cgroup v1: hierarchy id, controllers, path
    0::/system.slice/docker-3771f2....scope   cgroup v2 (the unified hierarchy)

The path is relative to a hierarchy's root; ``/proc/self/mountinfo`` says where each hierarchy is
mounted (``/sys/fs/cgroup/memory`` for v1's memory controller, ``/sys/fs/cgroup`` for v2) and
which part of it the mount shows (its *root*: ``/`` on a host, a delegated subtree in a
container). So the directory is the mount point joined with the path made relative to the mount's
root, whatever the cgroup driver (cgroupfs: ``docker/<id>``; systemd: ``system.slice/docker-<id>.scope``)
or a ``--cgroup-parent`` named it. A path outside the mount's root (``/..`` from another cgroup
namespace, or a subtree this mount does not show) cannot be read from here: :func:`locate` leaves
that resource out.

Each resource is read from cgroup v1 when its controller is mounted there (v1 hosts, and the
hybrid layout where v1 holds the controllers and v2 is mounted beside them, empty), else from v2:

=========  =====================================  ==================================================
resource   cgroup v1                              cgroup v2
=========  =====================================  ==================================================
CPU        ``cpuacct.usage`` (ns, cumulative)     ``cpu.stat`` ``usage_usec`` (µs, cumulative)
memory     ``memory.usage_in_bytes`` less         ``memory.current`` less ``inactive_file`` of
           ``total_inactive_file`` of             ``memory.stat``
           ``memory.stat``
=========  =====================================  ==================================================

Memory is counted as ``docker stats`` counts it: the page cache the kernel may drop at once
(inactive file pages) is not in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

CPU = "cpu"
MEMORY = "memory"
#: The v1 controller that holds each resource's counters.
V1_CONTROLLER = {CPU: "cpuacct", MEMORY: "memory"}
#: The files each resource is read from, by cgroup version.
FILES = {
    (CPU, 1): ("cpuacct.usage",),
    (CPU, 2): ("cpu.stat",),
    (MEMORY, 1): ("memory.usage_in_bytes", "memory.stat"),
    (MEMORY, 2): ("memory.current", "memory.stat"),
}


@dataclass(frozen=True)
class Membership:
    """One line of ``/proc/<pid>/cgroup``: a hierarchy, its controllers (none for v2) and the path in it."""

    hierarchy: int
    controllers: frozenset[str]
    path: str


@dataclass(frozen=True)
class CgroupMount:
    """A cgroup hierarchy mounted at ``mount_point``, showing its subtree ``root``."""

    mount_point: PurePosixPath
    root: str
    version: int
    controllers: frozenset[str]


@dataclass(frozen=True)
class CgroupDir:
    """The directory holding one resource's counters, and the cgroup version that names its files."""

    path: PurePosixPath
    version: int

    def files(self, resource: str) -> tuple[PurePosixPath, ...]:
        return tuple(self.path / name for name in FILES[(resource, self.version)])


def parse_memberships(text: str) -> list[Membership]:
    """The lines of ``/proc/<pid>/cgroup``; lines that do not read are skipped."""
    out = []
    for line in text.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not sep or not sep2 or not hierarchy.isdigit() or not path.startswith("/"):
            continue
        names = frozenset(c for c in controllers.split(",") if c)
        out.append(Membership(int(hierarchy), names, path))
    return out


def parse_mounts(text: str) -> list[CgroupMount]:
    """The cgroup mounts of a ``/proc/<pid>/mountinfo`` (proc(5)); other mounts are skipped."""
    out = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        version = 2 if tail[0] == "cgroup2" else 1
        controllers = frozenset() if version == 2 else frozenset(tail[2].split(",")) - {"rw", "ro"}
        out.append(CgroupMount(PurePosixPath(_unescape(fields[4])), _unescape(fields[3]), version, controllers))
    return out


def locate(memberships: list[Membership], mounts: list[CgroupMount]) -> dict[str, CgroupDir]:
    """The directory of each resource (``CPU``, ``MEMORY``) a process's cgroups can be read at.

    A v1 hierarchy holding the resource's controller wins; else the v2 hierarchy (``0::``). A
    resource whose cgroup no mount shows is left out.
    """
    found: dict[str, CgroupDir] = {}
    unified = next((m for m in memberships if m.hierarchy == 0 and not m.controllers), None)
    for resource, controller in V1_CONTROLLER.items():
        member = next((m for m in memberships if controller in m.controllers), None)
        directory = None
        if member is not None:
            holding = [m for m in mounts if m.version == 1 and controller in m.controllers]
            directory = _under_mount(member.path, holding, 1)
        if directory is None and unified is not None:
            directory = _under_mount(unified.path, [m for m in mounts if m.version == 2], 2)
        if directory is not None:
            found[resource] = directory
    return found


def _under_mount(path: str, mounts: list[CgroupMount], version: int) -> CgroupDir | None:
    if ".." in path.split("/"):
        return None  # the cgroup lies outside our cgroup namespace: no mount of ours shows it
    best: CgroupDir | None = None
    best_depth = -1
    for mount in mounts:
        root = mount.root.rstrip("/")
        if path != root and not path.startswith(root + "/"):
            continue
        depth = root.count("/")  # the most specific mount (a delegated subtree) wins over its parents
        if depth > best_depth:
            below = [part for part in path[len(root) :].split("/") if part]
            best, best_depth = CgroupDir(mount.mount_point.joinpath(*below), version), depth
    return best


def cpu_ns(version: int, text: str) -> int:
    """Cumulative CPU nanoseconds from ``cpuacct.usage`` (v1) or ``cpu.stat`` (v2); ValueError when it does not read."""
    if version == 1:
        return _non_negative(text.strip(), "cpuacct.usage")
    return _non_negative(_stat(text, "usage_usec", "cpu.stat"), "cpu.stat usage_usec") * 1000


def memory_bytes(version: int, usage_text: str, stat_text: str) -> int:
    """Memory in use as ``docker stats`` counts it: usage less inactive page cache; ValueError when it does not read."""
    if version == 1:
        usage_file, inactive_key = "memory.usage_in_bytes", "total_inactive_file"
    else:
        usage_file, inactive_key = "memory.current", "inactive_file"
    usage = _non_negative(usage_text.strip(), usage_file)
    try:
        inactive = _non_negative(_stat(stat_text, inactive_key, "memory.stat"), f"memory.stat {inactive_key}")
    except ValueError:
        inactive = 0  # docker stats also counts it as 0 when memory.stat lacks the line
    return usage - inactive if usage > inactive else 0


def _stat(text: str, key: str, file: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return value.strip()
    raise ValueError(f"{file}: no {key} line")


def _non_negative(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{what}: {text[:40]!r} is not a count")
    return int(text)


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
