"""Read what the doctor needs from this host: firewall rules, interfaces, ports in use.

Every reader returns plain data for ``core.doctor`` and never raises for a missing tool
or an unreadable file; it reports the problem instead, so the doctor can say so.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from portside.agent.host import read_kernel_port_range
from portside.core import netfilter
from portside.core.ports import PortRange, range_from_kernel

COMMAND_TIMEOUT_S = 15.0
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class FirewallRead:
    rulesets: tuple[netfilter.Ruleset, ...]
    errors: tuple[str, ...]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)


def read_firewall() -> FirewallRead:
    """iptables' filter table and every nftables table iptables does not already show."""
    rulesets: list[netfilter.Ruleset] = []
    errors: list[str] = []
    legacy = False
    try:
        version = _run("iptables", "-V").stdout
        legacy = "legacy" in version
        saved = _run("iptables-save", "-t", "filter")
        if saved.returncode == 0:
            rulesets.append(netfilter.parse_iptables_save(saved.stdout))
        else:
            errors.append(f"iptables-save failed: {saved.stderr.strip() or saved.returncode}")
    except FileNotFoundError:
        pass  # no iptables at all: nothing of it can drop traffic
    except (ValueError, subprocess.TimeoutExpired) as exc:
        errors.append(f"cannot read iptables rules: {exc}")
    try:
        listing = _run("nft", "-j", "list", "ruleset")
        if listing.returncode == 0:
            text = _run("nft", "-a", "list", "ruleset").stdout
            rulesets.append(netfilter.parse_nft_json(json.loads(listing.stdout or '{"nftables": []}'), text,
                                                     skip_iptables_tables=not legacy))
        else:
            errors.append(f"nft list ruleset failed: {listing.stderr.strip() or listing.returncode}")
    except FileNotFoundError:
        pass
    except (ValueError, subprocess.TimeoutExpired) as exc:
        errors.append(f"cannot read nftables rules: {exc}")
    return FirewallRead(tuple(rulesets), tuple(errors))


def kernel_ephemeral_range() -> tuple[int, int] | None:
    """The kernel's ephemeral port range, or None when it cannot be read."""
    found, problem = range_from_kernel(read_kernel_port_range())
    return None if problem else (found.start, found.end)


def interface_address(name: str) -> str:
    """The first IPv4 address of interface ``name``, or "" when it has none or cannot be read."""
    try:
        out = _run("ip", "-4", "-o", "addr", "show", "dev", name)
        words = out.stdout.split()
        return words[words.index("inet") + 1].split("/")[0] if out.returncode == 0 else ""
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return ""


def outward_interface() -> tuple[str, str]:
    """The default route's interface and its first IPv4 address (placeholders when there is none)."""
    name = "eth0"
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                name = fields[0]
                break
    except OSError:
        pass
    return name, interface_address(name) or "192.0.2.10"


def listening_ports(protocol_files: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> set[int]:
    """TCP ports something on this host listens on."""
    ports: set[int] = set()
    for path in protocol_files:
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def ports_taken_by_others(port_range: PortRange, ours: set[int]) -> int:
    return sum(1 for port in listening_ports() if port in port_range and port not in ours)
