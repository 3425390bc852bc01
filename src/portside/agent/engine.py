"""Checks on the Docker Engine portside runs on (it never reconfigures or restarts a user's engine)."""

from __future__ import annotations

import json
from pathlib import Path

USERLAND_PROXY_WARNING = (
    "Docker's userland proxy (docker-proxy) serves published ports on this engine: every request to a "
    "container pays for an extra copy through it. Start dockerd with --userland-proxy=false "
    '(or set "userland-proxy": false in /etc/docker/daemon.json) for the fast path.'
)


def userland_proxy_enabled(proc: Path = Path("/proc"), daemon_json: Path = Path("/etc/docker/daemon.json")) -> bool | None:
    """Whether the running dockerd uses docker-proxy; None when no dockerd process can be seen."""
    for cmdline_file in proc.glob("[0-9]*/cmdline"):
        try:
            argv = cmdline_file.read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"dockerd"):
            continue
        args = [a.decode(errors="replace") for a in argv[1:] if a]
        for i, arg in enumerate(args):
            if arg.startswith("--userland-proxy="):
                return arg.split("=", 1)[1].lower() not in ("false", "0")
            if arg == "--userland-proxy" and i + 1 < len(args):
                return args[i + 1].lower() not in ("false", "0")
        try:
            config = json.loads(daemon_json.read_text())
            if "userland-proxy" in config:
                return bool(config["userland-proxy"])
        except (OSError, ValueError):
            pass
        return True
    return None
