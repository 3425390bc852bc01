"""core.firewall: the chain portside keeps, rendered from its plan."""

from __future__ import annotations

import pytest

from portside.core import firewall
from portside.core.ports import PortRange

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


def test_guard_mode_drops_loopback_dnat_and_each_copy_after_admitting_bridges_and_sources() -> None:
    plan = firewall.GuardPlan("PORTSIDE-x", "guard", RANGE, ("10.1.0.0/16",), ("docker0", "br-1"), ("172.17.0.10", "172.17.0.9"))
    rules = firewall.guard_rules(plan)
    assert rules[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    assert rules[1].startswith("-m conntrack --ctorigdst 127.0.0.0/8 ") and rules[1].endswith("-j DROP")
    assert rules[2:5] == ["-i br-1 -j RETURN", "-i docker0 -j RETURN", "-s 10.1.0.0/16 -j RETURN"]
    assert [r.split()[1] for r in rules[5:7]] == ["172.17.0.9/32", "172.17.0.10/32"]  # numeric order
    assert rules[-1] == "-j RETURN" and not any("ctorigdstport" in r for r in rules)


def test_managed_mode_also_closes_the_range_by_original_port_for_tcp_and_udp() -> None:
    rules = firewall.guard_rules(firewall.GuardPlan("PORTSIDE-x", "managed", RANGE))
    closing = [r for r in rules if "--ctorigdstport 49153:65535" in r]
    assert [r.split()[1] for r in closing] == ["tcp", "udp"] and all(r.endswith("-j DROP") for r in closing)
    assert not any("--dport" in r for r in rules)


def test_the_restore_script_replaces_the_chain_in_one_commit_and_listing_round_trips() -> None:
    plan = firewall.GuardPlan("PORTSIDE-x", "managed", RANGE, (), ("docker0",), ("172.17.0.2",))
    script = firewall.restore_script(plan).splitlines()
    assert script[:2] == ["*filter", ":PORTSIDE-x - [0:0]"] and script[-1] == "COMMIT"
    listing = ["-N PORTSIDE-x", *script[2:-1]]
    assert firewall.normalise_listing(listing) == firewall.expected_listing(plan)
    assert firewall.normalise_listing(["-A X -p tcp -m tcp --dport 1 -j DROP", ""]) == ["-A X -p tcp --dport 1 -j DROP"]
