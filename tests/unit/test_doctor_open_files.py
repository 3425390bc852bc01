"""core.doctor's open-file finding (``limits.open-files``), from facts alone.

The server raises its soft RLIMIT_NOFILE to the hard limit at start; the doctor reports both,
and warns when a server with listeners (or, before a server runs, the hard limit a server
would raise to) is below 4096 — the fix names the places a hard limit is set.
"""

from __future__ import annotations

import pytest

from portside.core.doctor import MIN_OPEN_FILES, UNLIMITED, Facts, Finding, Listening, diagnose
from portside.core.ports import PortRange

LISTENER = Listening("load balancer web, HTTP :8080", 8080, public=False)


def facts(open_files: tuple[int, int] | None, listeners: tuple[Listening, ...] = (LISTENER,), server: bool = True) -> Facts:
    return Facts(
        port_range=PortRange(32768, 60999, "kernel"), kernel_range=(20000, 30000), reserved_tcp=(22,),
        own_ports={7070: "API"}, publish_ip="127.0.0.1", firewall_mode="guard", listeners=listeners,
        server=server, open_files=open_files,
    )


def open_files(f: Facts) -> list[Finding]:
    return [finding for finding in diagnose(f) if finding.check == "limits.open-files"]


def test_a_raised_limit_is_reported_as_ok_with_both_numbers() -> None:
    [finding] = open_files(facts((65536, 65536)))
    assert finding.severity == "ok"
    assert finding.summary == "open files: soft limit 65536, hard limit 65536"


def test_unlimited_is_said_in_words() -> None:
    [finding] = open_files(facts((UNLIMITED, UNLIMITED)))
    assert finding.severity == "ok" and "soft limit unlimited, hard limit unlimited" in finding.summary


@pytest.mark.parametrize(("soft", "hard"), [(1024, 1024), (MIN_OPEN_FILES - 1, MIN_OPEN_FILES - 1), (1024, 524288)])
def test_a_low_soft_limit_with_a_listener_is_a_warning_with_a_fix(soft: int, hard: int) -> None:
    [finding] = open_files(facts((soft, hard)))
    assert finding.severity == "warning"
    assert f"soft limit {soft}, hard limit {hard}" in finding.summary
    assert f"about {soft // 2} connections" in finding.summary
    assert "LimitNOFILE" in finding.fix and "--ulimit nofile" in finding.fix
    assert ("could not raise" in finding.summary) == (soft != hard)


def test_the_threshold_itself_is_enough() -> None:
    [finding] = open_files(facts((MIN_OPEN_FILES, MIN_OPEN_FILES)))
    assert finding.severity == "ok"


def test_a_low_limit_without_listeners_is_only_information() -> None:
    [finding] = open_files(facts((1024, 1024), listeners=()))
    assert finding.severity == "info" and "soft limit 1024" in finding.summary


def test_before_a_server_runs_the_hard_limit_is_what_counts() -> None:
    [low] = open_files(facts((1024, 2048), listeners=(), server=False))
    assert low.severity == "warning"
    assert "a server started here raises its soft limit 1024 to the hard limit 2048" in low.summary
    [fine] = open_files(facts((1024, 65536), listeners=(), server=False))
    assert fine.severity == "ok"


def test_no_finding_when_the_limits_were_not_read() -> None:
    assert open_files(facts(None)) == []


def test_a_warning_does_not_fail_the_report() -> None:
    findings = diagnose(facts((256, 256)))
    assert not any(f.severity == "error" for f in findings if f.check == "limits.open-files")
