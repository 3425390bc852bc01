"""Unit tests for portside.core.netfilter: iptables-save and nft JSON rules, evaluated."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from portside.core.firewall import GuardPlan, restore_script
from portside.core.netfilter import (
    Packet,
    RuleRef,
    Ruleset,
    Verdict,
    evaluate,
    parse_iptables_save,
    parse_nft_json,
)
from portside.core.ports import PortRange

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "netfilter"

# A NEW connection from a load balancer (10.0.0.5) to this host's port 50000, which Docker
# DNATs to 172.17.0.2:80 and forwards from eth0 to docker0.
LB_PACKET = Packet(
    "forward", "10.0.0.5", "172.17.0.2", 80, orig_dst="192.0.2.2", orig_dport=50000,
    in_iface="eth0", out_iface="docker0",
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def ipt(rules: str, *, forward: str = "ACCEPT", input: str = "ACCEPT", chains: tuple[str, ...] = ()) -> Ruleset:
    header = f"*filter\n:INPUT {input} [0:0]\n:FORWARD {forward} [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    header += "".join(f":{chain} - [0:0]\n" for chain in chains)
    return parse_iptables_save(header + rules.strip() + "\nCOMMIT\n")


def iref(text: str, position: int) -> RuleRef:
    chain = text.split()[1]
    return RuleRef("iptables", "filter", chain, position, text)


def verdict(ruleset: Ruleset | list[Ruleset], packet: Packet = LB_PACKET) -> Verdict:
    return evaluate(ruleset if isinstance(ruleset, list) else [ruleset], packet)


# -- nft JSON builders -------------------------------------------------------------


def m(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def ct(key: str, direction: str | None = None) -> dict[str, Any]:
    return {"ct": {"key": key, **({"dir": direction} if direction else {})}}


DROP: dict[str, Any] = {"drop": None}
ACCEPT: dict[str, Any] = {"accept": None}


def nft_items(
    rules: list[list[dict[str, Any]]], *, hook: str = "forward", policy: str = "accept", prio: int = 0,
    family: str = "inet", table: str = "t", chain: str = "base", extra: dict[str, list[list[dict[str, Any]]]] | None = None,
    sets: dict[str, list[Any]] | None = None, first_handle: int = 10,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"table": {"family": family, "name": table, "handle": 1}}]
    for name, elements in (sets or {}).items():
        items.append({"set": {"family": family, "table": table, "name": name, "type": "ipv4_addr", "handle": 2, "elem": elements}})
    items.append({"chain": {"family": family, "table": table, "name": chain, "handle": 3, "type": "filter",
                            "hook": hook, "prio": prio, "policy": policy}})
    handle = first_handle
    for name, chain_rules in [(chain, rules), *(extra or {}).items()]:
        if name != chain:
            items.append({"chain": {"family": family, "table": table, "name": name, "handle": 4}})
        for expr in chain_rules:
            items.append({"rule": {"family": family, "table": table, "chain": name, "handle": handle, "expr": expr}})
            handle += 1
    return items


def nft(rules: list[list[dict[str, Any]]], **kwargs: Any) -> Ruleset:
    return parse_nft_json({"nftables": nft_items(rules, **kwargs)})


def decided_handle(result: Verdict) -> int | None:
    return None if result.decided_by is None else result.decided_by.position


# -- iptables matches --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "src", "dropped"),
    [
        ("-A FORWARD -s 10.0.0.0/8,192.168.0.0/16 -j DROP", "10.1.2.3", True),
        ("-A FORWARD -s 10.0.0.0/8,192.168.0.0/16 -j DROP", "192.168.9.9", True),
        ("-A FORWARD -s 10.0.0.0/8,192.168.0.0/16 -j DROP", "172.16.0.1", False),
        ("-A FORWARD ! -s 10.0.0.0/8 -j DROP", "10.1.2.3", False),
        ("-A FORWARD ! -s 10.0.0.0/8 -j DROP", "172.16.0.1", True),
        ("-A FORWARD -s 172.16.0.1/32 -j DROP", "172.16.0.1", True),
        ("-A FORWARD -s 172.16.0.1 -j DROP", "172.16.0.2", False),
    ],
)
def test_source_address_lists_and_negation(rule: str, src: str, dropped: bool) -> None:
    result = verdict(ipt(rule), replace(LB_PACKET, src=src))
    assert result == (Verdict("drop", iref(rule, 1), None, ()) if dropped else Verdict("accept", None, None, ()))


def test_destination_with_dotted_netmask_matches_the_address_after_dnat() -> None:
    rule = "-A FORWARD -d 172.17.0.0/255.255.0.0 -j DROP"
    assert verdict(ipt(rule)).decided_by == iref(rule, 1)
    assert verdict(ipt(rule), replace(LB_PACKET, dst="172.18.0.2")).action == "accept"
    # The pre-DNAT destination is not what -d sees.
    assert verdict(ipt("-A FORWARD -d 192.0.2.2 -j DROP")).action == "accept"


@pytest.mark.parametrize(
    ("rule", "in_iface", "out_iface", "dropped"),
    [
        ("-A FORWARD -i veth+ -j DROP", "veth12ab", "docker0", True),
        ("-A FORWARD -i veth+ -j DROP", "eth0", "docker0", False),
        ("-A FORWARD -i + -j DROP", "anything", "docker0", True),
        ("-A FORWARD ! -o docker0 -j DROP", "eth0", "docker0", False),
        ("-A FORWARD ! -o docker0 -j DROP", "eth0", "br-1", True),
        ("-A FORWARD -i eth0 -o docker0 -j DROP", "eth0", "docker0", True),
    ],
)
def test_interfaces_with_wildcard_and_negation(rule: str, in_iface: str, out_iface: str, dropped: bool) -> None:
    result = verdict(ipt(rule), replace(LB_PACKET, in_iface=in_iface, out_iface=out_iface))
    assert result.decided_by == (iref(rule, 1) if dropped else None)


def test_unknown_interface_makes_a_dropping_rule_uncertain_not_a_drop() -> None:
    rule = "-A FORWARD -i eth1 -p tcp -j DROP"
    result = verdict(ipt(rule), replace(LB_PACKET, in_iface=None))
    assert result == Verdict("accept", None, None, (iref(rule, 1),))
    # A known mismatch settles it: -p udp is false whatever the interface is.
    assert verdict(ipt("-A FORWARD -i eth1 -p udp -j DROP"), replace(LB_PACKET, in_iface=None)).uncertain == ()


@pytest.mark.parametrize(
    ("rule", "proto", "dropped"),
    [
        ("-A FORWARD -p 17 -j DROP", "udp", True),
        ("-A FORWARD -p 17 -j DROP", "tcp", False),
        ("-A FORWARD -p 6 -j DROP", "tcp", True),
        ("-A FORWARD -p all -j DROP", "udp", True),
        ("-A FORWARD ! -p tcp -j DROP", "udp", True),
        ("-A FORWARD ! -p tcp -j DROP", "tcp", False),
        ("-A FORWARD -p icmp -j DROP", "tcp", False),
        ("-A FORWARD -m udp --dport 80 -j DROP", "tcp", False),  # -m udp reads a UDP header
    ],
)
def test_protocols_by_name_number_and_negation(rule: str, proto: str, dropped: bool) -> None:
    assert verdict(ipt(rule), replace(LB_PACKET, proto=proto)).action == ("drop" if dropped else "accept")


@pytest.mark.parametrize(
    ("spec", "dport", "dropped"),
    [
        ("--dport 8000:8100", 8050, True),
        ("--dport 8000:8100", 8101, False),
        ("--dport :1023", 80, True),
        ("--dport 1024:", 80, False),
        ("! --dport 80", 80, False),
        ("! --dport 80", 81, True),
        ("--destination-port 81", 81, True),
    ],
)
def test_tcp_dport_values_ranges_and_negation(spec: str, dport: int, dropped: bool) -> None:
    rule = f"-A FORWARD -p tcp -m tcp {spec} -j DROP"
    result = verdict(ipt(rule), replace(LB_PACKET, dport=dport))
    assert result.decided_by == (iref(rule, 1) if dropped else None)


def test_multiport_dports_and_ports_with_unknown_source_port() -> None:
    rule = "-A FORWARD -p tcp -m multiport --dports 22,80:90 -j DROP"
    assert verdict(ipt(rule), replace(LB_PACKET, dport=85)).decided_by == iref(rule, 1)
    assert verdict(ipt(rule), replace(LB_PACKET, dport=91)).action == "accept"
    negated = "-A FORWARD -p tcp -m multiport ! --dports 22,80:90 -j DROP"
    assert verdict(ipt(negated), replace(LB_PACKET, dport=91)).decided_by == iref(negated, 1)
    either = "-A FORWARD -p tcp -m multiport --ports 22,80:90 -j DROP"
    assert verdict(ipt(either), replace(LB_PACKET, dport=80)).decided_by == iref(either, 1)
    # dport misses, sport unknown: the rule may drop.
    assert verdict(ipt(either), replace(LB_PACKET, dport=443)) == Verdict("accept", None, None, (iref(either, 1),))
    assert verdict(ipt(either), replace(LB_PACKET, dport=443, sport=85)).decided_by == iref(either, 1)


def test_source_port_is_uncertain_unless_given() -> None:
    rule = "-A FORWARD -p tcp -m tcp --sport 1024:65535 -j DROP"
    assert verdict(ipt(rule)) == Verdict("accept", None, None, (iref(rule, 1),))
    assert verdict(ipt(rule), replace(LB_PACKET, sport=40000)).decided_by == iref(rule, 1)
    assert verdict(ipt(rule), replace(LB_PACKET, sport=53)) == Verdict("accept", None, None, ())


@pytest.mark.parametrize(
    ("match", "packet", "dropped"),
    [
        ("-m conntrack --ctstate NEW", LB_PACKET, True),
        ("-m conntrack --ctstate RELATED,ESTABLISHED", LB_PACKET, False),
        ("-m conntrack ! --ctstate NEW", LB_PACKET, False),
        ("-m conntrack --ctstate DNAT", LB_PACKET, True),
        ("-m conntrack --ctstate DNAT", replace(LB_PACKET, orig_dst=None, orig_dport=None), False),
        ("-m conntrack --ctstate SNAT", LB_PACKET, False),
        ("-m conntrack --ctstate INVALID", replace(LB_PACKET, ct_state="invalid"), True),
        ("-m state --state NEW", LB_PACKET, True),
        ("-m state --state ESTABLISHED", LB_PACKET, False),
    ],
)
def test_conntrack_and_state_states(match: str, packet: Packet, dropped: bool) -> None:
    rule = f"-A FORWARD {match} -j DROP"
    assert verdict(ipt(rule), packet).decided_by == (iref(rule, 1) if dropped else None)


@pytest.mark.parametrize(
    ("match", "dropped"),
    [
        ("--ctorigdst 192.0.2.2", True),
        ("--ctorigdst 127.0.0.0/8", False),
        ("! --ctorigdst 127.0.0.0/8", True),
        ("--ctorigdstport 50000", True),
        ("--ctorigdstport 49153:65535", True),
        ("--ctorigdstport 80", False),
        ("--ctorigsrc 10.0.0.0/24", True),
        ("--ctorigsrc 10.1.0.0/16", False),
        ("--ctreplsrc 172.17.0.2", True),
        ("--ctdir ORIGINAL", True),
        ("--ctdir REPLY", False),
        ("--ctstatus ASSURED,CONFIRMED", False),
        ("--ctproto udp", False),
    ],
)
def test_conntrack_original_tuple_direction_and_status(match: str, dropped: bool) -> None:
    rule = f"-A FORWARD -m conntrack {match} -j DROP"
    assert verdict(ipt(rule)).decided_by == (iref(rule, 1) if dropped else None)


def test_iprange_source_and_destination() -> None:
    rule = "-A FORWARD -p tcp -m iprange --src-range 203.0.113.10-203.0.113.20 -m tcp --dport 80 -j REJECT --reject-with tcp-reset"
    rs = ipt(rule)
    assert verdict(rs, replace(LB_PACKET, src="203.0.113.20")) == Verdict("reject", iref(rule, 1), None, ())
    assert verdict(rs, replace(LB_PACKET, src="203.0.113.21")).action == "accept"
    negated = "-A FORWARD -m iprange ! --dst-range 172.17.0.2-172.17.0.9 -j DROP"
    assert verdict(ipt(negated)).action == "accept"
    assert verdict(ipt(negated), replace(LB_PACKET, dst="172.17.0.10")).decided_by == iref(negated, 1)


def test_comment_never_affects_matching() -> None:
    rule = '-A FORWARD -p tcp -m comment --comment "--dport 22 ! -s 10.0.0.0/8 \\"quoted\\"" -j DROP'
    result = verdict(ipt(rule))
    assert result == Verdict("drop", iref(rule, 1), None, ())


def test_syn_and_tcp_flags_describe_a_first_packet() -> None:
    not_syn = "-A FORWARD -p tcp -m tcp ! --syn -m conntrack --ctstate NEW -j DROP"
    assert verdict(ipt(not_syn)).action == "accept"
    flags = "-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP"
    assert verdict(ipt(flags)).decided_by == iref(flags, 1)
    assert verdict(ipt("-A FORWARD -p tcp -m tcp --tcp-flags ALL NONE -j DROP")).action == "accept"


# -- iptables uncertainty ----------------------------------------------------------


def test_unknown_match_module_records_a_dropping_rule_and_continues() -> None:
    recent = "-A FORWARD -i eth0 -m recent --rcheck --seconds 60 --name portscan --mask 255.255.255.255 --rsource -j DROP"
    addrtype = "-A FORWARD -m addrtype --dst-type LOCAL -j DROP"
    other_iface = "-A FORWARD -i eth1 -m set --match-set blocked src -j DROP"
    result = verdict(ipt(f"{recent}\n{addrtype}\n{other_iface}"))
    assert result == Verdict("accept", None, None, (iref(recent, 1), iref(addrtype, 2)))


def test_unknown_option_of_a_known_module_is_uncertain() -> None:
    rule = "-A FORWARD -m conntrack --ctexpire 10:20 --ctstate NEW -j DROP"
    assert verdict(ipt(rule)) == Verdict("accept", None, None, (iref(rule, 1),))
    # ...but a known option of the same module that fails settles it.
    assert verdict(ipt("-A FORWARD -m conntrack --ctexpire 10:20 --ctstate INVALID -j DROP")).uncertain == ()


def test_uncertain_accept_is_skipped_and_not_recorded() -> None:
    rule = "-A FORWARD -m recent --rcheck --name lb -j ACCEPT"
    assert verdict(ipt(rule, forward="DROP")) == Verdict("drop", None, "filter FORWARD policy DROP", ())


def test_uncertain_jump_is_recorded_only_if_the_chain_would_drop() -> None:
    rules = """
-A FORWARD -m set --match-set blocked src -j BLOCK
-A FORWARD -m set --match-set audited src -j AUDIT
-A BLOCK -p tcp -j DROP
-A AUDIT -j LOG
-A AUDIT -j RETURN
"""
    result = verdict(ipt(rules, chains=("BLOCK", "AUDIT")))
    assert result == Verdict("accept", None, None, (iref("-A FORWARD -m set --match-set blocked src -j BLOCK", 1),))


# -- iptables chains, targets, policies --------------------------------------------


def test_jump_return_resumes_after_the_jump() -> None:
    rules = """
-A FORWARD -j CHECK
-A FORWARD -p tcp -j DROP
-A CHECK -s 10.0.0.0/8 -j RETURN
-A CHECK -j ACCEPT
"""
    rs = ipt(rules, chains=("CHECK",))
    assert verdict(rs).decided_by == iref("-A FORWARD -p tcp -j DROP", 2)
    assert verdict(rs, replace(LB_PACKET, src="172.16.0.1")) == Verdict("accept", None, None, ())


def test_goto_returns_to_the_caller_of_the_chain_that_went() -> None:
    rules = """
-A FORWARD -j A
-A FORWARD -j DROP
-A A -g B
-A A -j ACCEPT
"""
    assert verdict(ipt(rules, chains=("A", "B"))).decided_by == iref("-A FORWARD -j DROP", 2)
    jumped = rules.replace("-A A -g B", "-A A -j B")
    assert verdict(ipt(jumped, chains=("A", "B"))).action == "accept"
    # From a base chain, falling off the goto'd chain applies the base chain's policy.
    from_base = ipt("-A FORWARD -g B\n-A FORWARD -j ACCEPT", forward="DROP", chains=("B",))
    assert verdict(from_base) == Verdict("drop", None, "filter FORWARD policy DROP", ())


def test_accept_in_a_user_chain_ends_the_base_chain() -> None:
    rules = "-A FORWARD -j OK\n-A FORWARD -j DROP\n-A OK -d 172.17.0.2/32 -j ACCEPT"
    assert verdict(ipt(rules, chains=("OK",))) == Verdict("accept", None, None, ())


def test_non_terminating_targets_continue_to_the_reject() -> None:
    rules = """
-A FORWARD -j LOG --log-prefix "fwd: "
-A FORWARD -j MARK --set-xmark 0x1/0xffffffff
-A FORWARD -j NFLOG --nflog-group 5
-A FORWARD -p tcp -j REJECT --reject-with icmp-port-unreachable
"""
    result = verdict(ipt(rules))
    assert result == Verdict("reject", iref("-A FORWARD -p tcp -j REJECT --reject-with icmp-port-unreachable", 4), None, ())


def test_policies_and_hooks_are_per_base_chain() -> None:
    rs = ipt("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", input="DROP")
    to_host = Packet("input", "10.0.0.5", "192.0.2.2", 8080, in_iface="eth0")
    assert verdict(rs, to_host) == Verdict("drop", None, "filter INPUT policy DROP", ())
    assert verdict(rs, replace(to_host, dport=22)) == Verdict("accept", None, None, ())
    assert verdict(rs).action == "accept"  # FORWARD is ACCEPT; INPUT rules do not apply
    from_host = Packet("output", "192.0.2.2", "172.17.0.2", 80, out_iface="docker0")  # no input interface
    assert verdict(ipt("-A OUTPUT ! -i docker0 -o docker0 -j DROP"), from_host).action == "drop"


def test_counter_prefixed_lines_parse_and_keep_a_clean_text() -> None:
    rs = parse_iptables_save("*filter\n:FORWARD ACCEPT [9:540]\n[3:180] -A FORWARD -p tcp -j DROP\nCOMMIT\n")
    assert verdict(rs).decided_by == RuleRef("iptables", "filter", "FORWARD", 1, "-A FORWARD -p tcp -j DROP")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world\n", "line 1: expected '*table'"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DROP\n", "table *filter has no COMMIT"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A NOPE -j DROP\nCOMMIT\n", "line 3: chain 'NOPE' is not declared"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp --dport http -j DROP\nCOMMIT\n", "line 3: --dport http"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -s 10.0.0.300 -j DROP\nCOMMIT\n", "line 3: -s 10.0.0.300"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -g NOWHERE\nCOMMIT\n", "line 3: -g NOWHERE"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD --bogus 1 -j DROP\nCOMMIT\n", "line 3: unknown option '--bogus'"),
        ("*filter\n:FORWARD REJECT [0:0]\nCOMMIT\n", "line 2: chain FORWARD has policy 'REJECT'"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD ! ! -s 1.2.3.4 -j DROP\nCOMMIT\n", "line 3: '!' twice"),
        ('*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m comment --comment "open -j DROP\nCOMMIT\n', "line 3: No closing quotation"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-I FORWARD -j DROP\nCOMMIT\n", "line 3: expected '-A CHAIN ...'"),
        ("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate NEWISH -j DROP\nCOMMIT\n", "unknown state 'NEWISH'"),
        ("*nat\n:PREROUTING ACCEPT [0:0]\n*filter\nCOMMIT\n", "line 3: table *filter starts before table *nat"),
    ],
)
def test_malformed_iptables_save_names_the_line_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("'", "'")):
        parse_iptables_save(text)


# -- nft matches -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("right", "op", "dropped"),
    [
        ("10.0.0.5", "==", True),
        ({"prefix": {"addr": "10.0.0.0", "len": 8}}, "==", True),
        ({"prefix": {"addr": "10.0.0.0", "len": 8}}, "!=", False),
        ({"range": ["10.0.0.1", "10.0.0.4"]}, "==", False),
        ({"set": ["192.0.2.1", {"prefix": {"addr": "10.0.0.0", "len": 30}}, {"range": ["10.0.0.6", "10.0.0.9"]}]}, "==", False),
        ({"set": ["192.0.2.1", {"prefix": {"addr": "10.0.0.4", "len": 30}}]}, "==", True),
        ({"set": ["192.0.2.1", {"prefix": {"addr": "10.0.0.4", "len": 30}}]}, "!=", False),
        ("fd00::5", "!=", True),  # an IPv6 address never equals an IPv4 source
    ],
)
def test_nft_ip_saddr_value_prefix_range_set_and_negation(right: Any, op: str, dropped: bool) -> None:
    rs = nft([[m(payload("ip", "saddr"), right, op), DROP]])
    assert decided_handle(verdict(rs)) == (10 if dropped else None)


@pytest.mark.parametrize(
    ("left", "right", "op", "proto", "dropped"),
    [
        (payload("tcp", "dport"), 80, "==", "tcp", True),
        (payload("tcp", "dport"), {"range": [49153, 65535]}, "==", "tcp", False),
        (payload("tcp", "dport"), {"set": [22, {"range": [70, 90]}]}, "==", "tcp", True),
        (payload("tcp", "dport"), 80, "!=", "tcp", False),
        (payload("tcp", "dport"), 443, "!=", "udp", False),  # tcp dport implies meta l4proto tcp
        (payload("udp", "dport"), 80, "==", "udp", True),
        (payload("th", "dport"), 80, "==", "udp", True),
        (payload("th", "dport"), 1024, "<", "tcp", True),
        (payload("ip6", "daddr"), "::1", "!=", "tcp", False),
    ],
)
def test_nft_ports_with_protocol_dependency(left: Any, right: Any, op: str, proto: str, dropped: bool) -> None:
    rs = nft([[m(left, right, op), DROP]])
    assert decided_handle(verdict(rs, replace(LB_PACKET, proto=proto))) == (10 if dropped else None)


def test_nft_l4proto_and_ip_protocol() -> None:
    rs = nft([[m(meta("l4proto"), {"set": ["udp", 132]}), DROP], [m(payload("ip", "protocol"), 6, "!="), DROP]])
    assert decided_handle(verdict(rs, replace(LB_PACKET, proto="udp"))) == 10
    assert verdict(rs).action == "accept"


def test_nft_interface_names_wildcards_and_iif() -> None:
    rs = nft([
        [m(meta("iifname"), "veth*"), DROP],
        [m(meta("oifname"), {"set": ["br-1", "docker0"]}, "!="), DROP],
        [m(meta("iif"), "lo"), DROP],
    ])
    assert decided_handle(verdict(rs, replace(LB_PACKET, in_iface="veth99"))) == 10
    assert decided_handle(verdict(rs, replace(LB_PACKET, out_iface="eth2"))) == 11
    assert decided_handle(verdict(rs, replace(LB_PACKET, in_iface="lo"))) == 12
    assert verdict(rs).action == "accept"
    unknown_iface = verdict(rs, replace(LB_PACKET, in_iface=None))
    assert [ref.position for ref in unknown_iface.uncertain] == [10, 12]


@pytest.mark.parametrize(
    ("right", "op", "ct_state", "dropped"),
    [
        (["established", "related"], "in", "new", False),  # nft 1.0 writes flags as a list with "in"
        (["established", "related"], "==", "established", True),  # older nft: a bitmask list with "=="
        ({"set": ["new", "invalid"]}, "==", "new", True),
        ("invalid", "in", "invalid", True),
        ("new", "!=", "new", False),
    ],
)
def test_nft_ct_state_forms(right: Any, op: str, ct_state: str, dropped: bool) -> None:
    rs = nft([[m(ct("state"), right, op), DROP]])
    assert decided_handle(verdict(rs, replace(LB_PACKET, ct_state=ct_state))) == (10 if dropped else None)


def test_nft_ct_status_dnat_and_conntrack_tuples() -> None:
    rules = [
        [m(ct("status"), "dnat", "in"), m(ct("proto-dst", "original"), {"range": [49153, 65535]}),
         m(ct("ip daddr", "original"), "192.0.2.2"), m(ct("ip saddr", "reply"), "172.17.0.2"), DROP],
    ]
    rs = nft(rules)
    assert decided_handle(verdict(rs)) == 10
    assert verdict(rs, replace(LB_PACKET, orig_dst=None, orig_dport=None)).action == "accept"  # not DNAT'd
    assert verdict(rs, replace(LB_PACKET, orig_dport=8080)).action == "accept"
    status_only = nft([[m(ct("status"), "dnat", "in"), DROP]])
    assert decided_handle(verdict(status_only)) == 10
    assert verdict(status_only, replace(LB_PACKET, orig_dst=None, orig_dport=None)).action == "accept"


def test_nft_named_sets_of_prefixes_values_and_ranges() -> None:
    sets = {"lb": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, "192.0.2.10",
                   {"range": ["198.51.100.1", "198.51.100.9"]}, {"elem": {"val": "203.0.113.7", "timeout": 60}}]}
    rs = nft([[m(payload("ip", "saddr"), "@lb", "!="), DROP]], sets=sets)
    for allowed in ("10.0.0.200", "192.0.2.10", "198.51.100.9", "203.0.113.7"):
        assert verdict(rs, replace(LB_PACKET, src=allowed)).action == "accept", allowed
    for refused in ("10.0.1.1", "192.0.2.11", "198.51.100.10"):
        assert decided_handle(verdict(rs, replace(LB_PACKET, src=refused))) == 10, refused


def test_nft_jump_goto_return_and_continue() -> None:
    rules = [[{"jump": {"target": "a"}}], [m(payload("tcp", "dport"), 80), DROP]]
    extra = {
        "a": [[m(payload("ip", "saddr"), {"prefix": {"addr": "10.0.0.0", "len": 8}}), {"continue": None}],
              [m(payload("ip", "saddr"), "10.0.0.5"), {"goto": {"target": "b"}}], [ACCEPT]],
        "b": [[m(payload("tcp", "dport"), 80), {"return": None}], [DROP]],
    }
    rs = nft(rules, extra=extra)
    # a: continue, goto b; b returns to base (not to a, whose last rule would accept); base drops.
    assert decided_handle(verdict(rs)) == 11
    assert decided_handle(verdict(rs, replace(LB_PACKET, dport=81))) == 16  # b's own drop
    assert verdict(rs, replace(LB_PACKET, src="10.0.0.6")).action == "accept"  # a accepts


def test_nft_rule_with_several_statements_before_its_verdict() -> None:
    rs = nft([[m(meta("iifname"), "eth0"), {"counter": {"packets": 0, "bytes": 0}}, {"log": {"prefix": "x "}},
               {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}, {"reject": {"type": "tcp reset"}}]])
    assert verdict(rs) == Verdict("reject", verdict(rs).decided_by, None, ())
    assert decided_handle(verdict(rs)) == 10


def test_nft_verdict_map() -> None:
    vmap = {"vmap": {"key": ct("state"), "data": {"set": [
        ["established", ACCEPT], ["invalid", DROP], ["new", {"jump": {"target": "new_conns"}}]]}}}
    rs = nft([[vmap]], extra={"new_conns": [[m(payload("tcp", "dport"), 22), DROP]]})
    assert verdict(rs).action == "accept"
    assert decided_handle(verdict(rs, replace(LB_PACKET, dport=22))) == 11
    assert decided_handle(verdict(rs, replace(LB_PACKET, ct_state="invalid"))) == 10


def test_nft_unknown_expressions_are_uncertain() -> None:
    rs = nft([
        [m({"fib": {"result": "type", "flags": ["daddr"]}}, "local"), DROP],
        [m(meta("mark"), 1), m(meta("iifname"), "eth0"), DROP],
        [{"xt": {"type": "match", "name": "recent"}}, DROP],
        [{"limit": {"rate": 10, "per": "second"}}, ACCEPT],
        [m(meta("mark"), 1), m(meta("iifname"), "eth1"), DROP],  # a known mismatch: not recorded
    ], policy="drop")
    result = verdict(rs)
    assert (result.action, result.decided_by, result.policy) == ("drop", None, "inet t base policy drop")
    assert [ref.position for ref in result.uncertain] == [10, 11, 12]


# -- several base chains, priorities, backends -------------------------------------


def test_nft_base_chains_run_in_priority_order_and_accept_ends_only_one() -> None:
    early = nft_items([[ACCEPT]], table="early", chain="fwd", prio=-200, first_handle=100)
    late = nft_items([[m(payload("tcp", "dport"), 80), DROP]], table="late", chain="fwd", prio=10, first_handle=200)
    mid = nft_items([[m(meta("l4proto"), "tcp"), DROP]], table="mid", chain="fwd", prio=0, first_handle=300)
    rs = parse_nft_json({"nftables": late + early + mid})
    result = verdict(rs)
    assert result.decided_by is not None
    assert (result.decided_by.table, result.decided_by.position) == ("inet mid", 300)
    late_first = nft_items([[m(payload("tcp", "dport"), 80), DROP]], table="late", chain="fwd", prio=-10)
    swapped = verdict(parse_nft_json({"nftables": early + late_first + mid}))
    assert swapped.decided_by is not None and swapped.decided_by.table == "inet late"


def test_iptables_accepts_but_an_inet_forward_chain_drops() -> None:
    docker = parse_iptables_save(fixture("docker-20.10-iptables-save.txt"))
    guard = nft([[m(meta("iifname"), "eth0"), m(ct("proto-dst", "original"), {"range": [49153, 65535]}), DROP]],
                table="filter")
    result = verdict([docker, guard])
    assert result.decided_by is not None
    assert (result.action, result.decided_by.backend, result.decided_by.table, result.decided_by.chain) == (
        "drop", "nftables", "inet filter", "base")
    assert verdict([docker]).action == "accept"


def test_nft_skips_iptables_nft_tables_unless_told_not_to() -> None:
    data = json.loads(fixture("docker-20.10-nft.json"))
    assert parse_nft_json(data).base_chains == ()
    rs = parse_nft_json(data, fixture("docker-20.10-nft-a.txt"), skip_iptables_tables=False)
    assert [(b.table, b.name, b.hook) for b in rs.base_chains] == [("ip filter", "FORWARD", "forward")]
    assert verdict(rs).action == "accept"
    unpublished = replace(LB_PACKET, dst="172.17.0.3", dport=8080)
    assert verdict(rs, unpublished) == Verdict("drop", None, "ip filter FORWARD policy drop", ())


def test_nft_rule_text_comes_from_the_listing_or_is_rendered() -> None:
    data = json.loads(fixture("native-guard-nft.json"))
    listed = parse_nft_json(data, fixture("native-guard-nft-a.txt"))
    packet = replace(LB_PACKET, src="203.0.113.9", orig_dport=50001)
    expected = RuleRef("nftables", "inet portside_guard", "forward", 10,
                       'iifname "eth0" ct status dnat ct original proto-dst 49153-65535 tcp dport != @dyn_ports '
                       'counter drop comment "dynamic ports: lb only"')
    assert verdict(listed, packet) == Verdict("drop", expected, None, ())
    rendered = verdict(parse_nft_json(data), packet).decided_by
    assert rendered is not None and rendered.position == 10
    assert rendered.text == ('iifname eth0 ct status dnat ct original proto-dst 49153-65535 tcp dport != @dyn_ports '
                             'counter drop comment "dynamic ports: lb only"')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object with an 'nftables' list"),
        ({"nftables": [*nft_items([]), {"rule": {"family": "inet", "table": "t", "chain": "base", "expr": [DROP]}}]},
         "nft rule inet t base handle None: expected an integer 'handle'"),
        ({"nftables": nft_items([[{"jump": {"target": "nowhere"}}]])}, "jump to 'nowhere', which is not a chain"),
        ({"nftables": nft_items([[m(payload("ip", "saddr"), "@nope"), DROP]])}, "set @nope is not declared"),
        ({"nftables": nft_items([[{"match": {"op": "==", "left": meta("iifname")}}, DROP]])}, "lacks 'left' or 'right'"),
        ({"nftables": [{"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "input",
                                   "prio": "sooner"}}]}, "priority 'sooner'"),
        ({"nftables": ["rule"]}, "item 0 is not an object"),
        ({"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "gone", "handle": 1, "expr": []}}]},
         "chain inet t gone, which is not declared"),
    ],
)
def test_malformed_nft_json_names_the_object(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_nft_json(data)


# -- captured fixtures: Docker 20.10 (iptables 1.8.9, nf_tables), native nft -------


def test_docker_published_port_is_accepted_by_the_docker_chain() -> None:
    docker = parse_iptables_save(fixture("docker-20.10-iptables-save.txt"))
    assert verdict(docker) == Verdict("accept", None, None, ())
    udp = replace(LB_PACKET, proto="udp", dport=53, orig_dport=49200)
    assert verdict(docker, udp) == Verdict("accept", None, None, ())


def test_docker_unpublished_port_is_dropped_by_the_forward_policy() -> None:
    docker = parse_iptables_save(fixture("docker-20.10-iptables-save.txt"))
    for packet in (replace(LB_PACKET, dport=8080), replace(LB_PACKET, dst="172.17.0.3"), replace(LB_PACKET, proto="udp")):
        assert verdict(docker, packet) == Verdict("drop", None, "filter FORWARD policy DROP", ()), packet
    # Containers reach each other and the world through the docker0 rules.
    between = Packet("forward", "172.17.0.3", "172.17.0.2", 8080, in_iface="docker0", out_iface="docker0")
    assert verdict(docker, between).action == "accept"


def test_docker_isolation_drops_traffic_between_bridges() -> None:
    docker = parse_iptables_save(fixture("docker-20.10-iptables-save.txt"))
    across = Packet("forward", "172.18.0.2", "172.17.0.2", 80, in_iface="br-9aa1f3e9a655", out_iface="docker0")
    expected = RuleRef("iptables", "filter", "DOCKER-ISOLATION-STAGE-2", 1, "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP")
    assert verdict(docker, across) == Verdict("drop", expected, None, ())


def test_docker_user_ctorigdstport_drops_but_dport_over_the_range_does_not() -> None:
    text = fixture("docker-20.10-iptables-save.txt")
    orig = "-A DOCKER-USER -i eth0 -p tcp -m conntrack --ctorigdstport 49153:65535 -j DROP"
    post = "-A DOCKER-USER -i eth0 -p tcp -m tcp --dport 49153:65535 -j DROP"
    with_orig = parse_iptables_save(text.replace("-A DOCKER-USER -j RETURN", f"{orig}\n-A DOCKER-USER -j RETURN"))
    with_post = parse_iptables_save(text.replace("-A DOCKER-USER -j RETURN", f"{post}\n-A DOCKER-USER -j RETURN"))
    assert verdict(with_orig) == Verdict("drop", RuleRef("iptables", "filter", "DOCKER-USER", 1, orig), None, ())
    assert verdict(with_post) == Verdict("accept", None, None, ())  # dport after DNAT is 80


def test_docker_user_fixture_with_captured_rules() -> None:
    user = parse_iptables_save(fixture("docker-user-rules-iptables-save.txt"))
    drop = RuleRef("iptables", "filter", "DOCKER-USER", 2,
                   "-A DOCKER-USER -i eth0 -p tcp -m conntrack --ctorigdstport 49153:65535 -j DROP")
    assert verdict(user) == Verdict("drop", drop, None, ())
    assert verdict(user, replace(LB_PACKET, src="192.168.1.5")) == Verdict("accept", None, None, ())
    # A published port outside the dynamic range passes, past a rule that may drop it.
    recent = RuleRef("iptables", "filter", "DOCKER-USER", 5,
                     "-A DOCKER-USER -i eth0 -m recent --rcheck --seconds 60 --name portscan --mask 255.255.255.255 --rsource -j DROP")
    assert verdict(user, replace(LB_PACKET, orig_dport=8080)) == Verdict("accept", None, None, (recent,))


def test_docker_user_fixture_through_iptables_nft_xt_expressions() -> None:
    data = json.loads(fixture("docker-user-rules-nft.json"))
    rs = parse_nft_json(data, fixture("docker-user-rules-nft-a.txt"), skip_iptables_tables=False)
    result = verdict(rs)
    assert result.action == "accept"  # xt conntrack is opaque in JSON: the DROP is only "maybe"
    assert [(ref.chain, ref.position) for ref in result.uncertain] == [("DOCKER-USER", 7007), ("DOCKER-USER", 7010)]
    assert result.uncertain[0].text == 'iifname "eth0" meta l4proto tcp ct original proto-dst 49153-65535 counter drop'


def test_native_nft_input_chain_fixture() -> None:
    rs = parse_nft_json(json.loads(fixture("native-guard-nft.json")), fixture("native-guard-nft-a.txt"))
    to_host = Packet("input", "198.51.100.3", "192.0.2.2", 22, in_iface="eth0")
    assert verdict(rs, to_host).action == "accept"
    assert verdict(rs, replace(to_host, dport=8080)).policy == "inet portside_guard input policy drop"
    rejected = verdict(rs, replace(to_host, proto="udp", dport=5005))
    assert (rejected.action, decided_handle(rejected)) == ("reject", 23)
    allowed_source = verdict(rs, replace(to_host, src="203.0.113.7", proto="udp", dport=5005))
    assert (allowed_source.action, allowed_source.policy) == ("drop", "inet portside_guard input policy drop")
    assert [ref.position for ref in allowed_source.uncertain] == [24]  # fib daddr type local meta mark drop
    assert verdict(rs, replace(to_host, in_iface="lo", dport=9999)).action == "accept"


def test_native_nft_audit_chain_depends_on_the_source_port() -> None:
    rs = parse_nft_json(json.loads(fixture("native-guard-nft.json")), fixture("native-guard-nft-a.txt"))
    elsewhere = replace(LB_PACKET, orig_dst="198.51.100.50", orig_dport=8080, in_iface="eth1")
    # sport unknown: the "return" cannot be evaluated, so the audit chain's drop decides.
    assert decided_handle(verdict(rs, elsewhere)) == 15
    assert verdict(rs, replace(elsewhere, sport=40000)).action == "accept"
    early = verdict(rs, replace(LB_PACKET, src="203.0.113.1", dport=8080))
    assert early.decided_by == RuleRef("nftables", "ip early", "early_forward", 2, "ip saddr 203.0.113.0/24 tcp dport 8080 drop")


def test_portside_guard_chain_in_the_docker_fixture() -> None:
    plan = GuardPlan("PORTSIDE-abc", "managed", PortRange(49153, 65535, "flag"), lb_sources=("10.0.0.0/24",))
    script = restore_script(plan).splitlines()
    chain_rules = "\n".join(line for line in script if line.startswith("-A "))
    text = fixture("docker-20.10-iptables-save.txt").replace(
        ":DOCKER-USER - [0:0]", ":DOCKER-USER - [0:0]\n:PORTSIDE-abc - [0:0]"
    ).replace("-A DOCKER-USER -j RETURN", f"-A DOCKER-USER -j PORTSIDE-abc\n-A DOCKER-USER -j RETURN\n{chain_rules}")
    rs = parse_iptables_save(text)
    assert verdict(rs).action == "accept"
    stranger = verdict(rs, replace(LB_PACKET, src="10.9.9.9"))
    assert stranger.decided_by is not None and "--ctorigdstport 49153:65535" in stranger.decided_by.text
    loopback = verdict(rs, replace(LB_PACKET, src="10.9.9.9", orig_dst="127.0.0.1", orig_dport=8080))
    assert loopback.decided_by is not None and "--ctorigdst 127.0.0.0/8" in loopback.decided_by.text


# -- packets, speed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hook": "prerouting"}, "Packet.hook has value 'prerouting'"),
        ({"proto": "icmp"}, "Packet.proto has value 'icmp'"),
        ({"src": "10.0.0.256"}, "Packet.src has value '10.0.0.256'"),
        ({"orig_dst": "fd00::1"}, "Packet.orig_dst has value 'fd00::1'"),
        ({"dport": 70000}, "Packet.dport has value 70000"),
        ({"ct_state": "NEW"}, "Packet.ct_state has value 'NEW'"),
    ],
)
def test_malformed_packets_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(LB_PACKET, **changes)


def test_thousands_of_packets_evaluate_well_under_a_second() -> None:
    base = fixture("docker-user-rules-iptables-save.txt")
    extra = "\n".join(f"-A DOCKER-USER -s 198.18.{i // 250}.{i % 250} -p tcp -m tcp --dport {1000 + i} -j DROP"
                      for i in range(300))
    user = parse_iptables_save(base.replace("-A DOCKER-USER -j RETURN", extra + "\n-A DOCKER-USER -j RETURN"))
    native = parse_nft_json(json.loads(fixture("native-guard-nft.json")))
    packets = [replace(LB_PACKET, src=f"10.{i % 200}.{i % 7}.5", orig_dport=49153 + i % 16000) for i in range(3000)]
    started = time.perf_counter()
    results = [evaluate([user, native], packet) for packet in packets]
    assert time.perf_counter() - started < 1.0
    assert {r.action for r in results} == {"drop"}
