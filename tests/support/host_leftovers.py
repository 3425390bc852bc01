"""What a test host leaves on the machine, and how to end it (tests/support/hosts.py uses this).

Everything the hosts harness makes carries a *tag*, ``psh<pid>`` with the pid of the pytest
process that made it: network namespaces ``psh<pid>-switch`` and ``psh<pid>-<host>``, the root
namespace's link ``psh<pid>r``, the folder ``<tmp>/portside-hosts/psh<pid>/`` holding each
host's engine roots, and cgroups ``psh<pid>-<host>`` (the engines' ``--cgroup-parent``). So
leftovers are found by name alone, and a tag whose pid is dead belongs to a crashed run.

A host's processes are found three ways, because a killed engine leaves orphans:
- any process whose command line names the host's folder: dockerd (``--data-root``), its
  containerd (``--config <exec-root>/...``) and the container shims (``-address <exec-root>/...``);
- every descendant of those (the containers' processes);
- any process inside the host's network namespace (``Host.run`` / ``spawn`` strays);
- any process in the host's cgroup (containers whose shim is already gone).
Mounts are those whose mount point lies under the host's folder (overlay layers, the
engine's network-namespace bind mounts, ``shm``), unmounted deepest first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TAG_PREFIX = "psh"
TAG_PATTERN = re.compile(rf"^{TAG_PREFIX}(\d+)(?:-|r$|$)")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROCESS_EXIT_TIMEOUT_S = 10.0


def session_tag(pid: int | None = None) -> str:
    return f"{TAG_PREFIX}{os.getpid() if pid is None else pid}"


def hosts_base_dir() -> Path:
    """The folder under which every run keeps its hosts' engine roots."""
    return Path(tempfile.gettempdir()) / "portside-hosts"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _in_cgroup(pid: int, cgroup_names: list[str]) -> bool:
    if not cgroup_names:
        return False
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    return any(f"/{name}/" in line + "/" for line in lines for name in cgroup_names)


def commands_naming(folder: Path) -> list[tuple[int, str]]:
    """(pid, command line) of every other process whose command line names a path under ``folder``."""
    me = os.getpid()
    commands = [(pid, _cmdline(pid)) for pid in _pids() if pid != me]
    return [(pid, cmd) for pid, cmd in commands if f"{folder}/" in cmd]


def host_processes(folder: Path, netns: str, cgroup_names: list[str]) -> list[int]:
    """Pids of everything a host runs: its engine, shims, containers and strays in its namespace."""
    me = os.getpid()
    pids = [p for p in _pids() if p != me]
    netns_inode = _netns_inode(f"/run/netns/{netns}")
    found: set[int] = set()
    for pid in pids:
        if f"{folder}/" in _cmdline(pid) or _in_cgroup(pid, cgroup_names):
            found.add(pid)
        elif netns_inode is not None and _netns_inode(f"/proc/{pid}/ns/net") == netns_inode:
            found.add(pid)
    parents = {pid: _parent(pid) for pid in pids}
    grew = True
    while grew:  # descendants; bounded by the number of processes
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def kill_and_wait(pids: list[int], timeout: float = PROCESS_EXIT_TIMEOUT_S) -> list[int]:
    """SIGKILL ``pids`` and wait (bounded) until they are gone; return those still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)]
        if alive:
            time.sleep(0.05)
    return alive


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or under ``folder``, deepest first."""
    prefix = str(folder).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(folder) or point.startswith(prefix):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all(folder: Path) -> None:
    for _ in range(5):  # stacked mounts need more than one pass; bounded
        points = mounts_under(folder)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True)


def cgroup_dirs(name_prefix: str) -> list[Path]:
    """The cgroup folders (every v1 hierarchy, or the v2 tree) whose name starts with ``name_prefix``."""
    if not CGROUP_ROOT.is_dir():
        return []
    candidates = [CGROUP_ROOT] + [d for d in CGROUP_ROOT.iterdir() if d.is_dir() and not d.is_symlink()]
    found = []
    for root in candidates:
        try:
            found += [d for d in root.iterdir() if d.is_dir() and d.name.startswith(name_prefix)]
        except OSError:
            continue
    return found


def remove_cgroup(folder: Path) -> None:
    """rmdir a cgroup and its children, deepest first (cgroup folders hold only kernel files)."""
    for dirpath in sorted((entry[0] for entry in os.walk(folder)), key=lambda d: d.count("/"), reverse=True):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().partition("@")[0] for line in out.splitlines() if ":" in line]


@dataclass
class Leftovers:
    """Everything on the machine that carries ``tag``; empty after a clean teardown."""

    processes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.processes, self.mounts, self.namespaces, self.links, self.folders, self.cgroups))


def leftovers(tag: str) -> Leftovers:
    folder = hosts_base_dir() / tag
    found = Leftovers()
    found.processes = [f"{pid}: {cmd[:120]}" for pid, cmd in commands_naming(folder)]
    cgroups = sorted({d.name for d in cgroup_dirs(f"{tag}-")})
    found.processes += [f"{pid}: in cgroup {tag}-*" for pid in _pids() if _in_cgroup(pid, cgroups)]
    found.mounts = mounts_under(folder)
    found.namespaces = [name for name in netns_names() if name.startswith(f"{tag}-")]
    found.links = [name for name in root_links() if name == f"{tag}r"]
    found.folders = [str(folder)] if folder.exists() else []
    found.cgroups = [str(d) for d in cgroup_dirs(f"{tag}-")]
    return found


def remove_tag(tag: str) -> None:
    """End and remove everything carrying ``tag`` (hosts first, then the switch and the root link)."""
    folder = hosts_base_dir() / tag
    host_namespaces = [n for n in netns_names() if n.startswith(f"{tag}-") and n != f"{tag}-switch"]
    for netns in host_namespaces:
        name = netns[len(tag) + 1:]
        kill_and_wait(host_processes(folder / name, netns, [netns]))
    cgroups = sorted({d.name for d in cgroup_dirs(f"{tag}-")})
    kill_and_wait(host_processes(folder, f"{tag}-switch", cgroups))
    unmount_all(folder)
    for cgroup in cgroup_dirs(f"{tag}-"):
        remove_cgroup(cgroup)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        hosts_base_dir().rmdir()  # only when no other run uses it
    except OSError:
        pass
    for netns in host_namespaces + [f"{tag}-switch"]:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    subprocess.run(["ip", "link", "del", f"{tag}r"], capture_output=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_tags() -> set[str]:
    """Tags of runs whose pytest process is gone but whose namespaces, links, folders or cgroups remain."""
    names = netns_names() + root_links()
    base = hosts_base_dir()
    if base.is_dir():
        names += [d.name for d in base.iterdir()]
    names += [d.name for d in cgroup_dirs(TAG_PREFIX)]
    tags = set()
    for name in names:
        match = TAG_PATTERN.match(name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            tags.add(f"{TAG_PREFIX}{match.group(1)}")
    return tags


def sweep_dead_runs() -> list[str]:
    """Remove what crashed earlier runs left behind; return their tags."""
    tags = sorted(dead_tags())
    for tag in tags:
        remove_tag(tag)
    return tags
