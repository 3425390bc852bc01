"""Finding a container's cgroup and reading its counters, on fixture trees of every layout (core/cgroups.py, agent/usage.py)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest

from portside.agent.usage import CgroupReader, Usage
from portside.core import cgroups

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cgroups"
PID = 4242
ID = "3771f20adf3c7ab1320b14d3e05f434069b3501a15d5fdcc6c9b889a39506f3f"
EXPECTED = Usage(cpu_ns=1047804088 // 1000 * 1000, memory_bytes=1130496 - 286720)
EXPECTED_V1 = Usage(cpu_ns=1047804088, memory_bytes=1130496 - 286720)

LAYOUTS = {
    "v1-cgroupfs": (1, f"/sys/fs/cgroup/cpuacct/docker/{ID}", f"/sys/fs/cgroup/memory/docker/{ID}"),
    "v1-systemd": (1, f"/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-{ID}.scope",
                   f"/sys/fs/cgroup/memory/system.slice/docker-{ID}.scope"),
    "v2-systemd": (2, f"/sys/fs/cgroup/system.slice/docker-{ID}.scope", f"/sys/fs/cgroup/system.slice/docker-{ID}.scope"),
    "v2-cgroupfs": (2, f"/sys/fs/cgroup/docker/{ID}", f"/sys/fs/cgroup/docker/{ID}"),
    "v2-delegated": (2, f"/sys/fs/cgroup/user.slice/docker-{ID}.scope", f"/sys/fs/cgroup/user.slice/docker-{ID}.scope"),
}


def reader(tree: Path) -> CgroupReader:
    return CgroupReader(proc=tree / "proc", root=tree)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_is_found_and_read(layout: str) -> None:
    version, cpu_dir, memory_dir = LAYOUTS[layout]
    tree = reader(FIXTURES / layout)
    dirs = tree.locate(PID)
    assert dirs == {
        cgroups.CPU: cgroups.CgroupDir(PurePosixPath(cpu_dir), version),
        cgroups.MEMORY: cgroups.CgroupDir(PurePosixPath(memory_dir), version),
    }
    assert tree.read(dirs) == (EXPECTED_V1 if version == 1 else EXPECTED)


def test_hybrid_layout_takes_v1_controllers_over_the_empty_v2_hierarchy() -> None:
    dirs = reader(FIXTURES / "v1-cgroupfs").locate(PID)
    assert {d.version for d in dirs.values()} == {1}  # its unified cpu.stat says 5 µs: not taken


def test_a_process_that_is_gone_or_no_pid_has_no_cgroup(tmp_path: Path) -> None:
    tree = reader(FIXTURES / "v2-systemd")
    assert tree.locate(4243) == {}
    assert tree.locate(0) == {}  # Docker's State.Pid of a container that is not running


def test_a_cgroup_outside_our_namespace_or_mount_is_not_guessed() -> None:
    mounts = cgroups.parse_mounts("30 1 0:26 /user.slice/user-1000.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    outside = cgroups.parse_memberships(f"0::/../../system.slice/docker-{ID}.scope\n")
    elsewhere = cgroups.parse_memberships(f"0::/system.slice/docker-{ID}.scope\n")
    assert cgroups.locate(outside, mounts) == {}
    assert cgroups.locate(elsewhere, mounts) == {}


def test_the_most_specific_mount_of_a_hierarchy_wins() -> None:
    mounts = cgroups.parse_mounts(
        "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
        "31 1 0:26 /portside.slice /run/portside/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    dirs = cgroups.locate(cgroups.parse_memberships("0::/portside.slice/docker-1.scope\n"), mounts)
    assert dirs[cgroups.CPU].path == PurePosixPath("/run/portside/cgroup/docker-1.scope")


def test_mount_points_with_escaped_characters() -> None:
    (mount,) = cgroups.parse_mounts("30 1 0:26 / /mnt/cg\\040roups rw - cgroup2 cgroup2 rw\n")
    assert mount.mount_point == PurePosixPath("/mnt/cg roups")


def test_v2_without_the_memory_controller_reads_cpu_only(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "v2-systemd", tree)
    for name in ("memory.current", "memory.stat"):
        (tree / f"sys/fs/cgroup/system.slice/docker-{ID}.scope" / name).unlink()
    cg = reader(tree)
    assert cg.read(cg.locate(PID)) == Usage(cpu_ns=EXPECTED.cpu_ns, memory_bytes=None)


def test_counters_that_do_not_read_are_none(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES / "v1-cgroupfs", tree)
    (tree / f"sys/fs/cgroup/cpuacct/docker/{ID}/cpuacct.usage").write_text("not a number\n")
    (tree / f"sys/fs/cgroup/memory/docker/{ID}/memory.usage_in_bytes").write_text("-1\n")
    cg = reader(tree)
    assert cg.read(cg.locate(PID)) == Usage(None, None)


def test_memory_parsers_count_as_docker_stats_does() -> None:
    assert cgroups.memory_bytes(1, "1000\n", "total_inactive_file 300\ninactive_file 999\n") == 700
    assert cgroups.memory_bytes(2, "1000\n", "total_inactive_file 999\ninactive_file 300\n") == 700
    assert cgroups.memory_bytes(2, "1000\n", "anon 1000\n") == 1000  # no inactive_file line: nothing to take off
    assert cgroups.memory_bytes(2, "100\n", "inactive_file 300\n") == 0  # never negative
    with pytest.raises(ValueError, match="cpu.stat"):
        cgroups.cpu_ns(2, "user_usec 5\n")
    assert cgroups.cpu_ns(2, "usage_usec 7\n") == 7000


def test_membership_lines_that_do_not_read_are_skipped() -> None:
    text = "garbage\n1:cpu\nx:cpu:/a\n4:memory:/docker/1\n0::/docker/1\n"
    assert cgroups.parse_memberships(text) == [
        cgroups.Membership(4, frozenset({"memory"}), "/docker/1"),
        cgroups.Membership(0, frozenset(), "/docker/1"),
    ]
