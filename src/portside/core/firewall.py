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
3. packets from a guarded bridge (copies talking to each other) and from the
   configured load balancer sources pass;
4. managed mode only: any other new connection whose original destination port is
   in the dynamic range is dropped. DOCKER-USER sees packets after DNAT, so the rule
   matches ``--ctorigdstport``; a ``--dport`` rule over the range would never match;
5. when copies are published on an address other hosts can reach, any other new
   connection to a host port a live copy holds is dropped (ports the managed range
   rule already covers are left to it);
6. any other new connection into a guarded bridge that Docker did not DNAT is
   dropped: Docker forwards traffic to container addresses from any neighbour that
   routes the bridge subnet via this host (moby #41872).

Nothing in the chain names a container address. A copy's address exists only once
Docker has started it, so a rule per address leaves every start open until the rule
follows; the bridges, the loopback DNAT and the host ports (reserved and stored before
``docker create``) are all known before the copy exists. The chain's content is
therefore a function of the configuration, the bridges and the *stored* live tasks,
never of what one process happens to have in memory, and it is the same before and
after a restart.

portside's own listeners reach copies from this host (the OUTPUT hook), so none of
this stands between them and their targets. The chain is replaced atomically with
``iptables-restore --noflush`` whenever its content changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from portside.core.ports import PortRange
from portside.core.task import Task

FIREWALL_MODES = ("guard", "managed", "off")
DEFAULT_FIREWALL_MODE = "guard"
DOCKER_USER_CHAIN = "DOCKER-USER"
CHAIN_PREFIX = "PORTSIDE-"
LOOPBACK_NET = "127.0.0.0/8"
PROTOCOLS = ("tcp", "udp")
# A sync that failed is retried after this, doubling up to the resync interval.
RETRY_FIRST_DELAY_S = 0.5

HostPort = tuple[str, int]  # (protocol, port)


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
    publish_ip: str = "127.0.0.1"
    host_ports: tuple[HostPort, ...] = ()  # held by this server's live copies

    def __post_init__(self) -> None:
        if self.mode not in FIREWALL_MODES:
            raise ValueError(f"--firewall has value {self.mode!r}; expected one of {', '.join(FIREWALL_MODES)}")
        try:
            ipaddress.ip_address(self.publish_ip)
        except ValueError:
            raise ValueError(f"--publish-ip has value {self.publish_ip!r}; expected an IP address such as 127.0.0.1") from None


def guard_rules(plan: GuardPlan) -> list[str]:
    """The chain's rules, in order, as iptables arguments after ``-A CHAIN``."""
    rules = [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-m conntrack --ctorigdst {LOOPBACK_NET} -m comment --comment \"portside: 127.0.0.1-published ports from other hosts (moby #45610)\" -j DROP",
    ]
    bridges = sorted(set(plan.bridges))
    rules += [f"-i {bridge} -j RETURN" for bridge in bridges]
    rules += [f"-s {source} -j RETURN" for source in plan.lb_sources]
    if plan.mode == "managed":
        span = f"{plan.port_range.start}:{plan.port_range.end}"
        rules += [
            f"-p {proto} -m conntrack --ctorigdstport {span} -m comment --comment \"portside: dynamic range only from load balancers\" -j DROP"
            for proto in PROTOCOLS
        ]
    rules += [
        f"-p {proto} -m conntrack --ctorigdstport {span} -m comment --comment \"portside: host port of a copy, only through a load balancer\" -j DROP"
        for proto, span in guarded_port_spans(plan)
    ]
    rules += [
        f"-o {bridge} -m conntrack ! --ctstate DNAT -m comment --comment \"portside: container addresses only through a load balancer (moby #41872)\" -j DROP"
        for bridge in bridges
    ]
    rules.append("-j RETURN")
    return rules


def guarded_port_spans(plan: GuardPlan) -> list[tuple[str, str]]:
    """(protocol, ``a`` or ``a:b``) spans of copies' host ports that rule 5 drops, consecutive ports merged.

    None when copies are published on loopback only (rule 2 covers them); in managed mode
    only the ports outside the dynamic range (rule 4 covers the rest).
    """
    if ipaddress.ip_address(plan.publish_ip).is_loopback:
        return []
    spans: list[tuple[str, str]] = []
    for proto in PROTOCOLS:
        ports = sorted({
            port for p, port in plan.host_ports
            if p == proto and not (plan.mode == "managed" and plan.port_range.start <= port <= plan.port_range.end)
        })
        run_start = 0
        for i, port in enumerate(ports):
            if i + 1 < len(ports) and ports[i + 1] == port + 1:
                continue
            first = ports[run_start]
            spans.append((proto, str(port) if first == port else f"{first}:{port}"))
            run_start = i + 1
    return spans


def copies_host_ports(tasks: Iterable[Task]) -> tuple[HostPort, ...]:
    """The (protocol, host port) pairs live bridge-mode copies hold, sorted; known from admission on."""
    held: set[HostPort] = set()
    for task in tasks:
        if task.is_stopped or task.network_mode != "bridge":
            continue
        for container in task.containers:
            for port in container.ports:
                if port.host_port_range:
                    low, high = (int(x) for x in port.host_port_range.split("-"))
                    held.update((port.protocol, n) for n in range(low, high + 1))
                elif port.host_port:
                    held.add((port.protocol, port.host_port))
    return tuple(sorted(held))


def retry_delay_s(failures: int, interval_s: float) -> float:
    """How long to wait before retrying after ``failures`` failed syncs in a row (exponential, capped)."""
    return min(interval_s, RETRY_FIRST_DELAY_S * 2 ** max(0, failures - 1))


def restore_script(plan: GuardPlan) -> str:
    """``iptables-restore --noflush`` input that replaces the chain's content in one commit."""
    lines = ["*filter", f":{plan.chain} - [0:0]"]
    lines += [f"-A {plan.chain} {rule}" for rule in guard_rules(plan)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def jump_in_place(docker_user_rules: Sequence[str], chain: str) -> bool:
    """Whether DOCKER-USER (its ``-A`` lines) jumps to ``chain`` once, with only other portside chains before it.

    Other servers sharing the engine have chains of their own, which only return or drop: their order
    among each other does not matter, and demanding first place would make two servers fight forever.
    """
    jump = f"-A {DOCKER_USER_CHAIN} -j {chain}"
    rules = [" ".join(rule.split()) for rule in docker_user_rules]
    for rule in rules:
        if rule == jump:
            return rules.count(jump) == 1
        if not rule.startswith(f"-A {DOCKER_USER_CHAIN} -j {CHAIN_PREFIX}") or " " in rule.split(" -j ", 1)[1]:
            return False
    return False


def jump_script(chain: str, existing_jumps: int) -> str:
    """``iptables-restore --noflush`` input that moves the jump to the top in one commit: never a moment without it."""
    lines = ["*filter"] + [f"-D {DOCKER_USER_CHAIN} -j {chain}"] * existing_jumps
    lines += [f"-I {DOCKER_USER_CHAIN} 1 -j {chain}", "COMMIT"]
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
