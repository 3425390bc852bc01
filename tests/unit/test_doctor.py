"""core.doctor: each finding, from facts alone; firewall findings against real rule texts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from portside.core import doctor, firewall
from portside.core.doctor import Copy, Demand, Facts, Finding
from portside.core.firewall_advice import advice
from portside.core.netfilter import evaluate, parse_iptables_save, parse_nft_json
from portside.core.ports import PortRange

FIXTURES = Path(__file__).parent.parent / "fixtures" / "netfilter"
DOCKER = (FIXTURES / "docker-20.10-iptables-save.txt").read_text()
RANGE = PortRange(32768, 60999, "kernel")
COPY = Copy("t1", "web", "tcp", "127.0.0.1", 32768, "172.17.0.2", 80)
PUBLIC_COPY = replace(COPY, host_ip="0.0.0.0")


def with_rules(text: str, *rules: str) -> str:
    """The Docker fixture with ``rules`` (iptables-save lines) inserted first in their chains."""
    head, sep, tail = text.partition("-A FORWARD -j DOCKER-USER")
    return head + "\n".join(rules) + ("\n" if rules else "") + sep + tail


def guarded(text: str, plan: firewall.GuardPlan) -> str:
    chain_decl = f":{plan.chain} - [0:0]\n"
    text = text.replace(":DOCKER-USER - [0:0]\n", ":DOCKER-USER - [0:0]\n" + chain_decl)
    rules = [f"-A DOCKER-USER -j {plan.chain}"] + [f"-A {plan.chain} {r}" for r in firewall.guard_rules(plan)]
    return with_rules(text, *rules)


def facts(text: str = DOCKER, **changes: object) -> Facts:
    if "copies" in changes and any(c.host_ip == "0.0.0.0" for c in changes["copies"]):  # type: ignore[attr-defined]
        changes.setdefault("publish_ip", "0.0.0.0")
    base = Facts(
        port_range=RANGE, kernel_range=(32768, 60999), reserved_tcp=(22, 2375, 2376, 51678, 51679),
        own_ports={7070: "API"}, publish_ip="127.0.0.1", firewall_mode="guard",
        rulesets=(parse_iptables_save(text),), copies=(COPY,), bridge_gateway="172.17.0.1",
        outward_interface="eth0", outward_address="192.0.2.10",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def plan(mode: str = "guard", sources: tuple[str, ...] = (), copy: Copy = COPY) -> firewall.GuardPlan:
    return firewall.GuardPlan("PORTSIDE-abc", mode, RANGE, sources, ("docker0",), publish_ip=copy.host_ip,
                              host_ports=((copy.protocol, copy.host_port),))


# -- the range


@pytest.mark.parametrize(("source", "words"), [
    ("kernel", "from the kernel's net.ipv4.ip_local_port_range"),
    ("flag", "from --dynamic-port-range"),
    ("fallback", "ECS's fallback"),
])
def test_the_range_and_where_it_came_from(source: str, words: str) -> None:
    found = by_check(doctor.diagnose(facts(port_range=PortRange(40000, 40999, source))), "range")
    assert found == [Finding("range", "info", f"dynamic host port range 40000-40999 (1000 ports), {doctor.SOURCE_TEXT[source]}")]
    assert words in found[0].summary


def test_overlap_with_the_kernel_range_is_a_warning_naming_the_flag_to_fix_it() -> None:
    [finding] = by_check(doctor.diagnose(facts()), "range.ephemeral")
    assert finding.severity == "warning" and "28232 of the dynamic range's 28232 ports" in finding.summary
    assert "--dynamic-port-range 30000-32767" in finding.fix
    assert not doctor.failed([finding])


def test_a_range_below_the_kernel_range_passes() -> None:
    [finding] = by_check(doctor.diagnose(facts(port_range=PortRange(30000, 32767, "flag"))), "range.ephemeral")
    assert finding.severity == "ok"


def test_the_suggested_range_moves_below_a_kernel_range_that_reaches_into_it() -> None:
    assert doctor.suggested_range((32768, 60999)) == (30000, 32767)
    assert doctor.suggested_range((20000, 60999)) == (17232, 19999)
    [finding] = by_check(doctor.diagnose(facts(kernel_range=(20000, 60999))), "range.ephemeral")
    assert "--dynamic-port-range 17232-19999" in finding.fix


def test_an_unreadable_kernel_range_is_a_warning() -> None:
    [finding] = by_check(doctor.diagnose(facts(kernel_range=None)), "range.ephemeral")
    assert finding.severity == "warning" and "could not be read" in finding.summary


def test_reserved_ports_are_listed_and_a_listener_inside_the_range_is_a_warning() -> None:
    findings = by_check(doctor.diagnose(facts(own_ports={7070: "API", 40000: "listener"})), "range.reserved")
    assert findings[0].severity == "info" and "tcp 22, 2375, 2376, 51678, 51679" in findings[0].summary
    assert "7070 (API)" in findings[0].summary
    [inside] = findings[1:]
    assert inside.severity == "warning" and "listener port 40000 lies inside the dynamic range" in inside.summary


def test_capacity_error_warning_and_ok() -> None:
    small = PortRange(40000, 40009, "flag")
    error = by_check(doctor.diagnose(facts(port_range=small, demands=(Demand("web", 11, 200, 1),))), "range.capacity")
    assert error[0].severity == "error" and "need 11 dynamic ports" in error[0].summary and "10 of the range's 10" in error[0].summary
    surge = by_check(doctor.diagnose(facts(port_range=small, demands=(Demand("web", 3, 200, 2),))), "range.capacity")
    assert surge[0].severity == "warning" and "up to 12 dynamic ports" in surge[0].summary
    ok = by_check(doctor.diagnose(facts(port_range=small, demands=(Demand("web", 2, 200, 2),))), "range.capacity")
    assert ok[0].severity == "ok"
    taken = by_check(doctor.diagnose(facts(port_range=small, ports_taken_by_others=5, demands=(Demand("web", 6, 100, 1),))), "range.capacity")
    assert taken[0].severity == "error" and "5 are taken by other processes" in taken[0].summary
    one = by_check(doctor.diagnose(facts(port_range=small, ports_taken_by_others=1, demands=(Demand("web", 10, 100, 1),))), "range.capacity")
    assert one[0].severity == "error" and "9 of the range's 10 ports are free to hand out (1 is taken by other processes)" in one[0].summary


# -- the guard


def test_guard_mode_off_is_a_warning_and_drift_is_an_error() -> None:
    [off] = by_check(doctor.diagnose(facts(firewall_mode="off")), "firewall.guard")
    assert off.severity == "warning" and "--firewall off" in off.summary
    [drift] = by_check(doctor.diagnose(facts(guard_problems=("chain PORTSIDE-abc is missing",))), "firewall.guard")
    assert drift.severity == "error" and drift.summary == "chain PORTSIDE-abc is missing"
    [fine] = by_check(doctor.diagnose(facts()), "firewall.guard")
    assert fine.severity == "ok"


def test_unreadable_rules_are_an_error() -> None:
    [finding] = by_check(doctor.diagnose(facts(ruleset_errors=("iptables-save failed: Permission denied",))), "firewall.read")
    assert finding.severity == "error" and "Permission denied" in finding.summary


# -- load balancer paths


def test_dockers_own_rules_let_this_hosts_load_balancer_through() -> None:
    [finding] = by_check(doctor.diagnose(facts()), "firewall.load-balancer")
    assert finding.severity == "ok"


def test_a_range_drop_in_output_is_named_with_its_position_and_the_command_to_delete_it() -> None:
    rule = "-A OUTPUT -p tcp -m conntrack --ctorigdstport 32768:60999 -j DROP"
    findings = by_check(doctor.diagnose(facts(with_rules(DOCKER, rule))), "firewall.load-balancer")
    assert [f.severity for f in findings] == ["error"]
    assert f"iptables rule `{rule}` (filter OUTPUT #1) drops traffic from this host's load balancer (to the host port)" in findings[0].summary
    assert "task t1 (web, host port 32768)" in findings[0].summary
    assert "`iptables -t filter -D OUTPUT 1`" in findings[0].fix


def test_a_dport_rule_over_the_range_does_not_touch_dnat_traffic() -> None:
    rule = "-A OUTPUT -p tcp -m tcp --dport 32768:60999 -j DROP"
    [finding] = by_check(doctor.diagnose(facts(with_rules(DOCKER, rule))), "firewall.load-balancer")
    assert finding.severity == "ok"


def test_without_copies_the_range_itself_is_sampled() -> None:
    rule = "-A OUTPUT -p tcp -m conntrack --ctorigdstport 60000:60999 -j DROP"
    [finding] = by_check(doctor.diagnose(facts(with_rules(DOCKER, rule), copies=())), "firewall.load-balancer")
    assert finding.severity == "error" and "host port 60999" in finding.summary


def test_load_balancer_sources_cannot_reach_copies_published_on_loopback() -> None:
    findings = by_check(doctor.diagnose(facts(lb_sources=("10.1.2.0/24",))), "firewall.load-balancer")
    assert [f.severity for f in findings] == ["ok", "warning"]
    assert "published on 127.0.0.1" in findings[1].summary and "--publish-ip 0.0.0.0" in findings[1].fix


def test_a_load_balancer_source_blocked_in_forward_is_an_error() -> None:
    rule = "-A DOCKER-USER -s 10.0.0.0/8 -p tcp -m conntrack --ctorigdstport 32768:60999 -j DROP"
    text = with_rules(DOCKER, rule)
    ok = by_check(doctor.diagnose(facts(text)), "firewall.load-balancer")
    assert ok[0].severity == "ok"  # no source configured: only this host's load balancer
    [blocked] = by_check(doctor.diagnose(facts(text, lb_sources=("10.1.2.0/24",), copies=(PUBLIC_COPY,))), "firewall.load-balancer")
    assert blocked.severity == "error" and "from load balancer source 10.1.2.0/24" in blocked.summary


def test_a_drop_policy_is_named_when_no_rule_admits_the_source() -> None:
    text = DOCKER.replace(":OUTPUT ACCEPT [0:0]", ":OUTPUT DROP [0:0]")
    findings = by_check(doctor.diagnose(facts(text)), "firewall.load-balancer")
    assert {f.severity for f in findings} == {"error"}
    assert findings[0].summary.startswith("the filter OUTPUT policy DROP drops traffic from this host's load balancer")
    assert "add an accept" in findings[0].fix


def test_an_nft_rule_is_named_by_table_chain_and_handle() -> None:
    import json

    data = json.loads((FIXTURES / "native-guard-nft.json").read_text())
    text = (FIXTURES / "native-guard-nft-a.txt").read_text()
    nft = parse_nft_json(data, text)
    source = "203.0.113.9/32"
    found = doctor.diagnose(facts(lb_sources=(source,), copies=(PUBLIC_COPY,), rulesets=(parse_iptables_save(DOCKER), nft)))
    for finding in by_check(found, "firewall.load-balancer"):
        if finding.severity == "error":
            assert "nftables rule" in finding.summary and "nft delete rule" in finding.fix


def test_a_rule_that_cannot_be_evaluated_is_a_warning() -> None:
    rule = "-A OUTPUT -p tcp -m recent --rcheck -j DROP"
    findings = by_check(doctor.diagnose(facts(with_rules(DOCKER, rule))), "firewall.load-balancer")
    assert [f.severity for f in findings] == ["ok", "warning"]
    assert "cannot tell whether iptables rule" in findings[1].summary and "-m recent" in findings[1].summary


# -- exposure


def test_without_the_guard_docker_leaves_copies_open_both_ways() -> None:
    found = by_check(doctor.diagnose(facts(firewall_mode="off")), "firewall.exposed")
    assert [f.severity for f in found] == ["error", "error"]
    assert "moby #45610" in found[0].summary and "moby #41872" in found[1].summary
    assert "--firewall guard" in found[0].fix


def test_a_copy_published_on_every_address_is_open_without_the_guard() -> None:
    found = by_check(doctor.diagnose(facts(firewall_mode="off", copies=(PUBLIC_COPY,))), "firewall.exposed")
    assert "host port 192.0.2.10:32768" in found[0].summary


@pytest.mark.parametrize("mode", ["guard", "managed"])
@pytest.mark.parametrize("copy", [COPY, PUBLIC_COPY])
def test_portsides_own_chain_closes_every_stranger_path_and_keeps_load_balancers(mode: str, copy: Copy) -> None:
    sources = ("10.1.2.0/24",) if copy.host_ip == "0.0.0.0" else ()
    text = guarded(DOCKER, plan(mode, sources=sources, copy=copy))
    found = doctor.diagnose(facts(text, firewall_mode=mode, copies=(copy,), lb_sources=sources))
    assert by_check(found, "firewall.exposed")[0].severity == "ok"
    assert [f.severity for f in by_check(found, "firewall.load-balancer")] == ["ok"]


def test_a_bypassed_guard_points_at_the_guard_finding() -> None:
    found = by_check(doctor.diagnose(facts(guard_problems=("chain missing",))), "firewall.exposed")
    assert found and all("see firewall.guard" in f.fix for f in found)


# -- rules to copy


def test_the_printed_iptables_rules_admit_the_load_balancer_and_drop_strangers() -> None:
    lines = [line.replace("iptables -I ", "-A ", 1) for line in advice(RANGE, ["10.1.2.0/24"])["iptables"].splitlines()[1:]]
    text = with_rules(DOCKER, *reversed(lines))
    rulesets = (parse_iptables_save(text),)
    public = doctor.lb_packets(facts(lb_sources=("10.1.2.0/24",)), PUBLIC_COPY)[-1][1]
    assert evaluate(rulesets, public).action == "accept"
    stranger = doctor.stranger_packets(facts(), PUBLIC_COPY)[0][1]
    assert evaluate(rulesets, stranger).action == "drop"


def test_advice_names_the_range_in_every_recipe_and_placeholders_without_sources() -> None:
    recipes = advice(PortRange(30000, 32767, "flag"), [])
    assert set(recipes) == {"aws-security-group", "aws-network-acl", "nftables", "iptables", "ufw"}
    assert "FromPort=30000,ToPort=32767" in recipes["aws-security-group"] and "sg-LOADBALANCER" in recipes["aws-security-group"]
    assert "From=30000,To=32767" in recipes["aws-network-acl"] and "LB_CIDR" in recipes["aws-network-acl"]
    assert "ct original proto-dst 30000-32767" in recipes["nftables"]
    commands = [line for line in recipes["iptables"].splitlines() if not line.startswith("#")]
    assert all("--ctorigdstport 30000:32767" in c for c in commands[:2]) and not any("--dport" in c for c in commands)
    assert "ufw allow proto tcp from LB_CIDR to any port 30000:32767" in recipes["ufw"]


# -- listeners


def test_an_internet_facing_listener_blocked_in_input_is_a_warning_naming_the_rule() -> None:
    listening = (doctor.Listening("load balancer web, HTTP :8080", 8080, True), doctor.Listening("internal", 9090, False))
    [fine] = by_check(doctor.diagnose(facts(listeners=listening)), "firewall.listeners")
    assert fine.severity == "ok" and "1 internet-facing listener(s)" in fine.summary
    closed = DOCKER.replace(":INPUT ACCEPT [0:0]", ":INPUT DROP [0:0]")
    [blocked] = by_check(doctor.diagnose(facts(closed, listeners=listening)), "firewall.listeners")
    assert blocked.severity == "warning" and "filter INPUT policy DROP" in blocked.summary
    assert "load balancer web, HTTP :8080" in blocked.summary and "its clients" in blocked.fix
    assert not doctor.failed([blocked])


# -- facts the doctor could not read (a fresh Docker Engine's bridge lists no Gateway)


@pytest.mark.parametrize(("ipam", "interface", "subnet", "expected"), [
    ("172.17.0.1", "172.17.0.9", "172.17.0.0/16", "172.17.0.1"),  # IPAM's word first
    ("", "172.17.0.1", "172.17.0.0/16", "172.17.0.1"),  # a fresh engine: the interface's own address
    ("", "", "172.18.0.0/16", "172.18.0.1"),  # no address on the interface yet: the subnet's first host
    ("", "", "10.9.8.0/24", "10.9.8.1"),
    ("fe80::1", "", "", ""),  # not IPv4, and nothing else: unknown
    ("", "", "", ""),
    ("", "", "not a subnet", ""),
])
def test_bridge_gateway_falls_back_from_ipam_to_the_interface_to_the_subnet(
        ipam: str, interface: str, subnet: str, expected: str) -> None:
    assert doctor.bridge_gateway(ipam, interface, subnet) == expected


def test_an_unknown_bridge_gateway_skips_the_direct_path_instead_of_failing() -> None:
    findings = doctor.diagnose(facts(bridge_gateway=""))
    assert [f.severity for f in by_check(findings, "firewall.load-balancer")] == ["ok"]
    paths = [who for who, _ in doctor.lb_packets(facts(bridge_gateway=""), COPY)]
    assert "this host's load balancer (to the bridge address)" not in paths
    assert "this host's load balancer (to the bridge address)" in [who for who, _ in doctor.lb_packets(facts(), COPY)]


def test_a_fact_the_doctor_could_not_read_is_a_finding() -> None:
    findings = doctor.diagnose(facts(unreadable=("Docker's bridge network (connection refused)",)))
    (finding,) = by_check(findings, "doctor.facts")
    assert finding.severity == "warning"
    assert "cannot read Docker's bridge network (connection refused)" in finding.summary


def test_a_check_that_cannot_run_on_odd_facts_becomes_a_finding_and_the_others_still_run() -> None:
    odd = facts(bridge_gateway="not-an-address")  # the old crash: Packet(src=...) raised ValueError
    findings = doctor.diagnose(odd)
    (broken,) = [f for f in by_check(findings, "firewall.load-balancer") if f.summary.startswith("cannot check")]
    assert broken.severity == "warning" and "not-an-address" in broken.summary
    assert by_check(findings, "firewall.exposed")  # later checks still ran
