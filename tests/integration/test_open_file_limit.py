"""The server's open-file limit: raised to the hard limit at start, reported in /metrics and the doctor.

A real ``portside server`` child whose limits the test lowers before exec (``preexec_fn``),
as a shell with ``ulimit -n`` or a service manager would start it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import PortsideProcess, free_port

pytestmark = [pytest.mark.docker]

LOW_SOFT = 512
LOW_HARD = 1024


def _limits(soft: int, hard: int | None = None) -> Any:
    def lower() -> None:  # in the child, before exec
        _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, current_hard if hard is None else hard))

    return lower


@pytest.fixture
def servers(docker_client: Any) -> Iterator[list[PortsideProcess]]:
    started: list[PortsideProcess] = []
    yield started
    for server in started:
        server.stop()


def _metrics(server: PortsideProcess) -> dict[str, float]:
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("portside_nofile_")}


def _open_files_finding(server: PortsideProcess) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "portside.cli.main", "doctor", "--json", "--endpoint", server.endpoint],
                          capture_output=True, text=True, timeout=60, check=False)
    [finding] = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "limits.open-files"]
    return finding


def test_a_server_started_with_a_low_soft_limit_raises_it_to_the_hard_limit(tmp_path: Path, servers: list[Any]) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOW_SOFT:
        pytest.skip(f"this machine's hard limit ({hard}) leaves nothing to raise")
    server = PortsideProcess(tmp_path / "state", "--firewall", "off", preexec_fn=_limits(LOW_SOFT))
    servers.append(server)
    server.start()
    expected = float("inf") if hard == resource.RLIM_INFINITY else float(hard)
    assert _metrics(server) == {"portside_nofile_soft_limit": expected, "portside_nofile_hard_limit": expected}
    finding = _open_files_finding(server)
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert finding["summary"] == f"open files: soft limit {shown}, hard limit {shown}"
    assert f"open files: soft limit raised from {LOW_SOFT} to the hard limit {shown}" in server.log()


def test_a_low_hard_limit_is_reported_and_warned_about_once_a_listener_exists(tmp_path: Path, servers: list[Any]) -> None:
    server = PortsideProcess(tmp_path / "state", "--firewall", "off", preexec_fn=_limits(LOW_SOFT, LOW_HARD))
    servers.append(server)
    server.start()
    assert _metrics(server) == {"portside_nofile_soft_limit": LOW_HARD, "portside_nofile_hard_limit": LOW_HARD}
    before = _open_files_finding(server)
    assert (before["severity"], before["summary"]) == ("info", f"open files: soft limit {LOW_HARD}, hard limit {LOW_HARD}")

    elb = server.client("elbv2")
    lb = elb.create_load_balancer(Name="fd", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]["LoadBalancerArn"]
    elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=free_port(),
                        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])
    after = _open_files_finding(server)
    assert after["severity"] == "warning"
    assert f"soft limit {LOW_HARD}, hard limit {LOW_HARD}" in after["summary"] and "LimitNOFILE" in after["fix"]
