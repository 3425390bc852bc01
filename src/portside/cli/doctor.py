"""`portside doctor`: ask the running server for its report, or check this host before one runs."""

from __future__ import annotations

import json
from typing import Any

import click

from portside import open_file_limit
from portside.agent import netfacts
from portside.agent.engine import userland_proxy_enabled
from portside.agent.host import read_kernel_port_range
from portside.agent.ports import choose_range
from portside.config import ServerConfig
from portside.control.doctor import render_report
from portside.core import doctor

DOCKER_BRIDGE, DOCKER_BRIDGE_SUBNET = "docker0", "172.17.0.0/16"  # Docker's defaults, before any server asked it
SEVERITY_LABEL = {"ok": "ok", "info": "info", "warning": "WARNING", "error": "ERROR"}


def local_report(config: ServerConfig) -> dict[str, Any]:
    """The report for a server that would start with ``config`` on this host (none runs yet)."""
    port_range, _warning = choose_range(config.dynamic_port_range, read_kernel_port_range())
    read = netfacts.read_firewall()
    interface, address = netfacts.outward_interface()
    own = {config.api_port: "API"}
    limit = open_file_limit.current()  # a server started from this shell inherits it
    facts = doctor.Facts(
        port_range=port_range, kernel_range=netfacts.kernel_ephemeral_range(), reserved_tcp=config.reserved_ports_tcp,
        own_ports=own, publish_ip=config.publish_ip, firewall_mode=config.firewall_mode, lb_sources=config.lb_sources,
        rulesets=read.rulesets, ruleset_errors=read.errors, outward_interface=interface, outward_address=address,
        direct_routing=config.direct_routing, userland_proxy=userland_proxy_enabled(),
        bridge_gateway=doctor.bridge_gateway("", netfacts.interface_address(DOCKER_BRIDGE), DOCKER_BRIDGE_SUBNET),
        ports_taken_by_others=netfacts.ports_taken_by_others(port_range, set(own)), server=False,
        open_files=(limit.soft, limit.hard),
    )
    return render_report(facts, doctor.diagnose(facts))


def render_text(report: dict[str, Any], source: str) -> str:
    lines = [f"portside doctor: {source}", ""]
    width = max((len(f["check"]) for f in report["findings"]), default=10)
    for finding in report["findings"]:
        label = SEVERITY_LABEL.get(finding["severity"], finding["severity"])
        lines.append(f"  {label:<8} {finding['check']:<{width}}  {finding['summary']}")
        if finding["fix"] and finding["severity"] in ("warning", "error"):
            lines.append(f"  {'':<8} {'':<{width}}  fix: {finding['fix']}")
    lines += ["", doctor.summary_line([doctor.Finding(**f) for f in report["findings"]]), ""]
    rng = report["portRange"]
    lines.append(f"Rules for firewalls portside does not manage (dynamic range {rng['start']}-{rng['end']}):")
    for name, text in report["rules"].items():
        lines.append(f"\n[{name}]")
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


def emit(report: dict[str, Any], source: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**report, "source": source}, indent=2))
    else:
        click.echo(render_text(report, source), nl=False)


