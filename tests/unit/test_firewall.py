"""core.firewall: the chain portside keeps, rendered from its plan."""

from __future__ import annotations

import pytest

from portside.core import firewall
from portside.core.lifecycle import TaskStatus
from portside.core.ports import PortRange
from portside.core.task import Container, PortPlan, Task

RANGE = PortRange(49153, 65535, "fallback")


def test_chain_names_fit_iptables_and_differ_per_owner() -> None:
    assert firewall.chain_name("0123456789abcdef") == "PORTSIDE-0123456789ab"
    assert len(firewall.chain_name("f" * 64)) <= 28


def test_sources_are_normalised_deduplicated_and_bad_ones_name_the_flag() -> None:
    assert firewall.parse_sources(["10.0.0.7", "10.0.0.0/24", "10.0.0.9/24"]) == ("10.0.0.7/32", "10.0.0.0/24")
    with pytest.raises(ValueError, match=r"--lb-source has value 'ten'; expected an IPv4 address or CIDR"):
        firewall.parse_sources(["ten"])
    with pytest.raises(ValueError, match="only IPv4"):
        firewall.parse_sources(["fd00::/64"])


def test_an_unknown_mode_names_the_flag() -> None:
    with pytest.raises(ValueError, match="--firewall has value 'strict'; expected one of guard, managed, off"):
        firewall.GuardPlan("PORTSIDE-x", "strict", RANGE)


def test_guard_mode_drops_loopback_dnat_and_undnated_traffic_into_each_bridge_after_admitting_bridges_and_sources() -> None:
    plan = firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, ("10.1.0.0/16",), ("docker0", "br-1"))
    rules = firewall.guard_rules(plan)
    assert rules[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    assert rules[1].startswith("-m conntrack --ctorigdst 127.0.0.0/8 ") and rules[1].endswith("-j DROP")
    assert rules[2:5] == ["-i br-1 -j RETURN", "-i docker0 -j RETURN", "-s 10.1.0.0/16 -j RETURN"]
    assert [r.split(" -m comment")[0] for r in rules[5:7]] == [
        "-o br-1 -m conntrack ! --ctstate DNAT", "-o docker0 -m conntrack ! --ctstate DNAT"]
    assert all(r.endswith("-j DROP") for r in rules[5:7])
    assert rules[7:] == ["-j RETURN"]
    assert not any("ctorigdstport" in r or " -d " in r for r in rules)  # no container address, no host port


def test_nothing_in_the_chain_depends_on_a_container_address_only_on_ports_held_before_the_start() -> None:
    copy_a = firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, (), ("docker0",), "0.0.0.0", (("tcp", 50001),))
    assert firewall.guard_rules(copy_a) == firewall.guard_rules(
        firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, (), ("docker0",), "0.0.0.0", (("tcp", 50001),)))
    port_rules = [r for r in firewall.guard_rules(copy_a) if "ctorigdstport" in r]
    assert [r.split(" -m comment")[0] for r in port_rules] == ["-p tcp -m conntrack --ctorigdstport 50001"]


def test_host_ports_are_guarded_only_where_other_hosts_can_reach_them_and_merged_into_spans() -> None:
    ports = (("tcp", 50001), ("tcp", 50002), ("tcp", 50003), ("tcp", 50007), ("udp", 50002), ("tcp", 8080))
    public = firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, publish_ip="0.0.0.0", host_ports=ports)
    assert firewall.guarded_port_spans(public) == [
        ("tcp", "8080"), ("tcp", "50001:50003"), ("tcp", "50007"), ("udp", "50002")]
    # Published on loopback: the 127.0.0.0/8 rule already covers every copy.
    assert firewall.guarded_port_spans(firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, host_ports=ports)) == []
    # Managed: the range rule covers the dynamic ports; a static port outside it still needs its own rule.
    managed = firewall.GuardPlan("PORTSIDE-x", "managed", RANGE, publish_ip="10.0.0.5", host_ports=ports)
    assert firewall.guarded_port_spans(managed) == [("tcp", "8080")]


def test_host_ports_come_from_live_bridge_mode_copies_from_admission_on() -> None:
    def task(arn: str, mode: str, *ports: PortPlan, stopped: bool = False) -> Task:
        t = Task(arn=arn, id=arn, region="r", cluster="c", cluster_arn="cc", task_definition_arn="td", family="f",
                 revision=1, network_mode=mode, container_instance_arn="ci",
                 containers=[Container("web", "ca", "img", "ecs-web", ports=list(ports))], cpu=0, memory=16,
                 created_at=0.0)
        if stopped:
            t.advance(TaskStatus.STOPPED, 0.0)
        return t

    tasks = [
        task("a", "bridge", PortPlan(80, 50001, dynamic=True), PortPlan(53, 50002, "udp")),  # PENDING: not started yet
        task("b", "bridge", PortPlan(None, None, "tcp", "8000-8002", "41000-41002")),
        task("c", "awsvpc", PortPlan(80, 80)),
        task("d", "bridge", PortPlan(80, 50009), stopped=True),
    ]
    assert firewall.copies_host_ports(tasks) == (
        ("tcp", 41000), ("tcp", 41001), ("tcp", 41002), ("tcp", 50001), ("udp", 50002))


def test_a_bad_publish_ip_names_the_flag() -> None:
    with pytest.raises(ValueError, match="--publish-ip has value 'localhost'; expected an IP address"):
        firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, publish_ip="localhost")


def test_failed_syncs_are_retried_sooner_first_then_backing_off_to_the_resync_interval() -> None:
    assert [firewall.retry_delay_s(n, 10.0) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert firewall.retry_delay_s(1, 0.2) == 0.2


def test_managed_mode_also_closes_the_range_by_original_port_for_tcp_and_udp() -> None:
    rules = firewall.guard_rules(firewall.GuardPlan("PORTSIDE-x", "managed", RANGE))
    closing = [r for r in rules if "--ctorigdstport 49153:65535" in r]
    assert [r.split()[1] for r in closing] == ["tcp", "udp"] and all(r.endswith("-j DROP") for r in closing)
    assert not any("--dport" in r for r in rules)


def test_the_restore_script_replaces_the_chain_in_one_commit_and_listing_round_trips() -> None:
    plan = firewall.GuardPlan("PORTSIDE-x", "managed", RANGE, (), ("docker0",), "0.0.0.0", (("tcp", 8080),))
    script = firewall.restore_script(plan).splitlines()
    assert script[:2] == ["*filter", ":PORTSIDE-x - [0:0]"] and script[-1] == "COMMIT"
    listing = ["-N PORTSIDE-x", *script[2:-1]]
    assert firewall.normalise_listing(listing) == firewall.expected_listing(plan)
    assert firewall.normalise_listing(["-A X -p tcp -m tcp --dport 1 -j DROP", ""]) == ["-A X -p tcp --dport 1 -j DROP"]


def test_the_jump_is_in_place_once_with_only_other_portside_chains_ahead_of_it() -> None:
    def rules(*targets: str) -> list[str]:
        return [f"-A DOCKER-USER -j {target}" for target in targets]

    assert firewall.jump_in_place(rules("PORTSIDE-x", "RETURN"), "PORTSIDE-x")
    assert firewall.jump_in_place(rules("PORTSIDE-y", "PORTSIDE-x", "RETURN"), "PORTSIDE-x")
    assert not firewall.jump_in_place(rules("ACCEPT", "PORTSIDE-x"), "PORTSIDE-x")
    assert not firewall.jump_in_place(["-A DOCKER-USER -s 10.0.0.1/32 -j PORTSIDE-y", *rules("PORTSIDE-x")], "PORTSIDE-x")
    assert not firewall.jump_in_place(rules("PORTSIDE-x", "PORTSIDE-x"), "PORTSIDE-x")
    assert not firewall.jump_in_place(rules("RETURN"), "PORTSIDE-x")
    assert firewall.jump_script("PORTSIDE-x", 2).splitlines() == [
        "*filter", "-D DOCKER-USER -j PORTSIDE-x", "-D DOCKER-USER -j PORTSIDE-x", "-I DOCKER-USER 1 -j PORTSIDE-x", "COMMIT"]


def test_every_comment_is_printed_back_by_iptables_as_written() -> None:
    """``iptables -S`` escapes quotes and backslashes in a comment, so the chain would never match its
    plan and be rewritten at every check (seen in the many-hosts scenarios: a copy's apostrophe)."""
    import re

    ports = (("tcp", 50001), ("udp", 50002))
    rules = [rule for mode in ("guard", "managed") for rule in firewall.guard_rules(
        firewall.GuardPlan("PORTSIDE-x", mode, RANGE, ("10.1.0.0/16",), ("docker0",), "0.0.0.0", ports))]
    comments = {m.group(1) for r in rules for m in [re.search(r'--comment "([^"]*)"', r)] if m}
    assert len(comments) == 4  # loopback, the dynamic range, a copy's host port, container addresses
    for comment in comments:
        assert re.fullmatch(r"[A-Za-z0-9 .,:;()#/_+-]+", comment), comment
