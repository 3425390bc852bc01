"""The host firewall portside keeps: one iptables chain, hung off Docker's DOCKER-USER.

Theory
------
Docker publishes a container port with a DNAT rule and then *forwards* the packet to
the container's bridge address. Everything that reaches a copy from another machine
therefore crosses the filter table's FORWARD hook, where Docker calls DOCKER-USER
first. portside hangs one chain of its own there (``PORTSIDE-<owner>``, one per
server so servers sharing an engine never touch each other's rules) and decides:

1. established and related packets pass (the chain only judges new connections);
2. a forwarded packet whose *original* destination was a loopback address is
   dropped: Docker 20.10 DNATs ports published on 127.0.0.1 from every interface
   (moby #45610), so a neighbour could reach them by sending to 127.0.0.1;
3. packets from a container bridge (copies talking to each other) and from the
   configured load balancer sources pass;
4. managed mode only: any other new connection whose original destination port is
   in the dynamic range is dropped. DOCKER-USER sees packets after DNAT, so the rule
   matches ``--ctorigdstport``; a ``--dport`` rule over the range would never match;
5. anything else addressed to one of this server's containers is dropped: Docker
   forwards traffic to container addresses from any neighbour that routes the
   bridge subnet via this host (moby #41872).

portside's own listeners reach copies from this host (the OUTPUT hook), so none of
this stands between them and their targets. The chain is replaced atomically with
``iptables-restore --noflush`` whenever its content changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from portside.core.ports import PortRange

FIREWALL_MODES = ("guard", "managed", "off")
DEFAULT_FIREWALL_MODE = "guard"
DOCKER_USER_CHAIN = "DOCKER-USER"
CHAIN_PREFIX = "PORTSIDE-"
LOOPBACK_NET = "127.0.0.0/8"
PROTOCOLS = ("tcp", "udp")


def chain_name(owner: str) -> str:
    """The chain of the server labelled ``owner`` (iptables allows 28 characters)."""
    return CHAIN_PREFIX + owner[:12]


def parse_sources(values: Iterable[str], flag: str = "--lb-source") -> tuple[str, ...]:
    """Normalise load balancer source addresses/CIDRs; ValueError names the flag and the value."""
    sources: list[str] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{flag} has value {value!r}; expected an IPv4 address or CIDR such as 10.0.0.0/24") from None
        if network.version != 4:
            raise ValueError(f"{flag} has value {value!r}; only IPv4 sources are supported")
        if str(network) not in sources:
            sources.append(str(network))
    return tuple(sources)


@dataclass(frozen=True)
class GuardPlan:
    """Everything the chain's content depends on."""

    chain: str
    mode: str
    port_range: PortRange
    lb_sources: tuple[str, ...] = ()
    bridges: tuple[str, ...] = ("docker0",)
    container_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in FIREWALL_MODES:
            raise ValueError(f"--firewall has value {self.mode!r}; expected one of {', '.join(FIREWALL_MODES)}")


def guard_rules(plan: GuardPlan) -> list[str]:
    """The chain's rules, in order, as iptables arguments after ``-A CHAIN``."""
    rules = [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-m conntrack --ctorigdst {LOOPBACK_NET} -m comment --comment \"portside: 127.0.0.1-published ports from other hosts (moby #45610)\" -j DROP",
    ]
    rules += [f"-i {bridge} -j RETURN" for bridge in sorted(set(plan.bridges))]
    rules += [f"-s {source} -j RETURN" for source in plan.lb_sources]
    if plan.mode == "managed":
        span = f"{plan.port_range.start}:{plan.port_range.end}"
        rules += [
            f"-p {proto} -m conntrack --ctorigdstport {span} -m comment --comment \"portside: dynamic range only from load balancers\" -j DROP"
            for proto in PROTOCOLS
        ]
    rules += [
        f"-d {ip}/32 -m comment --comment \"portside: container only through a load balancer\" -j DROP"
        for ip in sorted(set(plan.container_ips), key=ipaddress.ip_address)
    ]
    rules.append("-j RETURN")
    return rules


def restore_script(plan: GuardPlan) -> str:
    """``iptables-restore --noflush`` input that replaces the chain's content in one commit."""
    lines = ["*filter", f":{plan.chain} - [0:0]"]
    lines += [f"-A {plan.chain} {rule}" for rule in guard_rules(plan)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def expected_listing(plan: GuardPlan) -> list[str]:
    """The chain as ``iptables -S CHAIN`` prints it, to tell whether the kernel still holds it."""
    return [f"-N {plan.chain}"] + [f"-A {plan.chain} {rule}" for rule in guard_rules(plan)]


def normalise_listing(lines: Sequence[str]) -> list[str]:
    """``iptables -S`` output with the cosmetic differences iptables introduces removed."""
    out = []
    for line in lines:
        line = line.strip()
        if line:
            out.append(" ".join(line.replace(" -m tcp", "").replace(" -m udp", "").split()))
    return out
