"""Facts about this host: its instance id, CPU, memory and platform attributes."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from portside.core.arns import ec2_instance_id

MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def read_machine_id() -> str:
    for path in MACHINE_ID_PATHS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return platform.node() or "unknown-host"


def host_instance_id() -> str:
    return ec2_instance_id(read_machine_id())


def cpu_units() -> int:
    """Registered CPU as ECS does: cores × 1024."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores * 1024


def memory_mib() -> int:
    """Total memory from /proc/meminfo in MiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1024


def read_kernel_port_range() -> str | None:
    try:
        return Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    except OSError:
        return None


def cpu_architecture() -> str:
    machine = platform.machine().lower()
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)


def owner_id(state_dir: Path) -> str:
    """The id a server labels its containers with: one per (machine, state directory)."""
    from portside.core.arns import stable_hex_id

    return stable_hex_id("owner", read_machine_id(), str(Path(state_dir).resolve()))[:16]
