"""`portside doctor`: what stands between load balancers and copies, and what else reaches them.

Pure: ``diagnose(facts)`` turns what the shell read from this host (and, when a server
runs, from the server) into findings. Each finding says what is wrong and how to fix it;
passing checks are listed too so the output shows what was checked. Severity ``error``
makes the command exit non-zero; ``warning`` does not.

Firewall checks simulate packets through the host's iptables and nftables rules
(``core.netfilter``) along the paths a load balancer uses, and along the paths a stranger
would use: the host port on a public address, 127.0.0.1 sent through the link (moby
#45610), a copy's bridge address routed via this host (moby #41872).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from portside.core.netfilter import Packet, Ruleset, Verdict, evaluate
from portside.core.ports import PortRange

SEVERITIES = ("ok", "info", "warning", "error")
# A stranger: TEST-NET-2, arriving on the host's outward interface.
STRANGER = "198.51.100.7"
SUGGESTED_RANGE = (30000, 32767)
SAMPLE_CONTAINER_IP = "172.17.255.254"
LOOPBACK_PUBLISH = ("127.0.0.1", "localhost")
SAMPLE_CONTAINER_PORT = 80
MIN_OPEN_FILES = 4096  # below this soft limit a listener's clients run out of descriptors early
UNLIMITED = -1  # RLIMIT_NOFILE's RLIM_INFINITY as Linux reports it
SOURCE_TEXT = {
    "flag": "from --dynamic-port-range",
    "kernel": "from the kernel's net.ipv4.ip_local_port_range",
    "fallback": "ECS's fallback: net.ipv4.ip_local_port_range could not be read",
}


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    summary: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity, "summary": self.summary, "fix": self.fix}


@dataclass(frozen=True)
class Copy:
    """One published port of a running copy."""

    task: str
    container: str
    protocol: str
    host_ip: str
    host_port: int
    container_ip: str | None  # its bridge address (None in host mode or when unknown)
    container_port: int


@dataclass(frozen=True)
class Demand:
    """A service's need for dynamic host ports."""

    service: str
    desired: int
    maximum_percent: int
    ports_per_task: int


@dataclass(frozen=True)
class Listening:
    """A listener bound on this host, as clients would reach it."""

    name: str  # "load balancer web, HTTP :8080"
    port: int
    public: bool  # bound on every address (internet-facing) rather than loopback


@dataclass(frozen=True)
class Facts:
    port_range: PortRange
    kernel_range: tuple[int, int] | None
    reserved_tcp: tuple[int, ...]
    own_ports: dict[int, str]  # port -> what holds it ("API", "listener fw:8080")
    publish_ip: str
    firewall_mode: str
    lb_sources: tuple[str, ...] = ()
    rulesets: tuple[Ruleset, ...] = ()
    ruleset_errors: tuple[str, ...] = ()
    guard_problems: tuple[str, ...] = ()
    bridge_interface: str = "docker0"
    bridge_gateway: str = ""  # "" = unknown: the direct-routing path is then not checked
    outward_interface: str = "eth0"
    outward_address: str = "192.0.2.10"
    direct_routing: bool = True
    userland_proxy: bool = False
    copies: tuple[Copy, ...] = ()
    demands: tuple[Demand, ...] = ()
    listeners: tuple[Listening, ...] = ()
    ports_taken_by_others: int = 0
    server: bool = True
    unreadable: tuple[str, ...] = ()  # facts the doctor could not read, each said as a finding
    # RLIMIT_NOFILE (soft, hard) of the server (of this shell before one starts); UNLIMITED is -1; None: unread
    open_files: tuple[int, int] | None = None


def diagnose(facts: Facts) -> list[Finding]:
    """Every check's findings. A check that cannot run on these facts says so as a finding of its own."""
    findings = [Finding("doctor.facts", "warning", f"cannot read {what}",
                        "the checks that need it are skipped or use a fallback; see the server log")
                for what in facts.unreadable]
    for name, check in CHECKS:
        try:
            findings += check(facts)
        except ValueError as exc:  # a fact of an unexpected form (an empty or odd address, say)
            findings.append(Finding(name, "warning", f"cannot check: {exc}", "report this with the doctor's facts"))
    return findings


def bridge_gateway(ipam_gateway: str, interface_address: str, subnet: str) -> str:
    """The bridge's own address: IPAM's Gateway, else the interface's address, else the subnet's first host.

    A freshly installed Docker Engine may list a Subnet but no Gateway for its default bridge.
    """
    for candidate in (ipam_gateway, interface_address):
        try:
            return str(ipaddress.IPv4Address(candidate.split("/")[0]))
        except ValueError:
            continue
    try:
        return str(next(ipaddress.IPv4Network(subnet, strict=False).hosts()))
    except (ValueError, StopIteration):
        return ""


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


# -- the range ------------------------------------------------------------------------------


def _range(facts: Facts) -> Finding:
    r = facts.port_range
    return Finding("range", "info", f"dynamic host port range {r} ({r.size} ports), {SOURCE_TEXT[r.source]}")


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


def suggested_range(kernel: tuple[int, int] | None) -> tuple[int, int]:
    """30000-32767 unless the kernel's own range reaches into it; then the ports just below it."""
    if kernel is None or _overlap(SUGGESTED_RANGE, kernel) == 0:
        return SUGGESTED_RANGE
    end = kernel[0] - 1
    return max(1024, end - (SUGGESTED_RANGE[1] - SUGGESTED_RANGE[0])), end


def _ephemeral_overlap(facts: Facts) -> list[Finding]:
    if facts.kernel_range is None:
        return [Finding("range.ephemeral", "warning", "the kernel's ephemeral port range could not be read",
                        "check /proc/sys/net/ipv4/ip_local_port_range")]
    r, kernel = facts.port_range, facts.kernel_range
    shared = _overlap((r.start, r.end), kernel)
    if not shared:
        return [Finding("range.ephemeral", "ok", f"the dynamic range does not overlap the kernel's ephemeral range {kernel[0]}-{kernel[1]}")]
    lo, hi = suggested_range(kernel)
    return [Finding(
        "range.ephemeral", "warning",
        f"{shared} of the dynamic range's {r.size} ports are also the kernel's ephemeral range {kernel[0]}-{kernel[1]} "
        "(ECS's default): an outbound connection from this host can hold a port a copy is then denied",
        f"run `portside server --dynamic-port-range {lo}-{hi}`, below the kernel's range",
    )]


def _reserved(facts: Facts) -> list[Finding]:
    r = facts.port_range
    reserved = ", ".join(str(p) for p in sorted(facts.reserved_tcp))
    own = ", ".join(f"{port} ({what})" for port, what in sorted(facts.own_ports.items()))
    findings = [Finding("range.reserved", "info", f"never handed out: tcp {reserved}" + (f"; held by portside: {own}" if own else ""))]
    for port, what in sorted(facts.own_ports.items()):
        if port in r:
            findings.append(Finding(
                "range.reserved", "warning", f"{what} port {port} lies inside the dynamic range {r}; "
                "while it is bound copies skip it, but a copy can hold it first and the bind then fails",
                f"move the {what} to a port outside {r}",
            ))
    return findings


def _capacity(facts: Facts) -> list[Finding]:
    r = facts.port_range
    reserved_inside = sum(1 for p in set(facts.reserved_tcp) | set(facts.own_ports) if p in r)
    available = r.size - reserved_inside - facts.ports_taken_by_others
    steady = sum(d.desired * d.ports_per_task for d in facts.demands)
    surge = sum(math.floor(d.desired * d.maximum_percent / 100) * d.ports_per_task for d in facts.demands)
    what = f"{available} of the range's {r.size} ports are free to hand out"
    if facts.ports_taken_by_others:
        taken = facts.ports_taken_by_others
        what += f" ({taken} {'is' if taken == 1 else 'are'} taken by other processes)"
    if steady > available:
        return [Finding("range.capacity", "error", f"services need {steady} dynamic ports at their desired counts; {what}",
                        "widen --dynamic-port-range or lower desired counts")]
    if surge > available:
        return [Finding("range.capacity", "warning",
                        f"a deployment at maximumPercent needs up to {surge} dynamic ports; {what}",
                        "widen --dynamic-port-range or lower maximumPercent")]
    return [Finding("range.capacity", "ok", f"services need {steady} dynamic ports ({surge} while deploying); {what}")]


# -- the firewall ---------------------------------------------------------------------------


def _guard(facts: Facts) -> list[Finding]:
    findings = [Finding("firewall.read", "error", error, "run doctor as root with iptables and nft installed")
                for error in facts.ruleset_errors]
    if facts.firewall_mode == "off":
        findings.append(Finding(
            "firewall.guard", "warning",
            "portside does not keep the host firewall (--firewall off); Docker 20.10 leaves published ports and "
            "container addresses reachable from neighbours (moby #45610, #41872)",
            "run the server with --firewall guard (the default) or managed, or apply the rules printed below",
        ))
    elif not facts.server:
        findings.append(Finding("firewall.guard", "info", f"{facts.firewall_mode} mode: portside installs its chain when the server starts"))
    elif facts.guard_problems:
        findings.append(Finding("firewall.guard", "error", "; ".join(facts.guard_problems),
                                "restart the server, or look for a tool that rewrites DOCKER-USER"))
    else:
        findings.append(Finding("firewall.guard", "ok", f"portside's chain is in place ({facts.firewall_mode} mode)"))
    return findings


def _samples(facts: Facts) -> list[Copy]:
    """The copies to check: the running ones, else the range's ends and middle on a sample copy."""
    if facts.copies:
        return [c for c in facts.copies if c.protocol == "tcp"]
    r = facts.port_range
    return [Copy("(sample)", "web", "tcp", facts.publish_ip, port, SAMPLE_CONTAINER_IP, SAMPLE_CONTAINER_PORT)
            for port in sorted({r.start, (r.start + r.end) // 2, r.end})]


def lb_packets(facts: Facts, copy: Copy) -> list[tuple[str, Packet]]:
    """How load balancers reach ``copy``: this host's listeners, then each configured source."""
    paths: list[tuple[str, Packet]] = []
    local = "127.0.0.1" if copy.host_ip in ("0.0.0.0", "127.0.0.1", "") else copy.host_ip
    if facts.direct_routing and copy.container_ip and facts.bridge_gateway:
        paths.append(("this host's load balancer (to the bridge address)", Packet(
            hook="output", src=facts.bridge_gateway, dst=copy.container_ip, dport=copy.container_port,
            in_iface="", out_iface=facts.bridge_interface)))
    if copy.container_ip and not facts.userland_proxy:
        paths.append(("this host's load balancer (to the host port)", Packet(
            hook="output", src=local, dst=copy.container_ip, dport=copy.container_port, orig_dst=local,
            orig_dport=copy.host_port, in_iface="", out_iface=facts.bridge_interface)))
    else:  # docker-proxy (or host mode) listens on the host port itself
        paths += [("this host's load balancer (to the host port)", Packet(
            hook=hook, src=local, dst=local, dport=copy.host_port, in_iface="lo" if hook == "input" else "",
            out_iface="lo")) for hook in ("output", "input")]
    for source in facts.lb_sources if copy.host_ip not in LOOPBACK_PUBLISH else ():
        src = source.split("/")[0]
        public = facts.outward_address if copy.host_ip in ("0.0.0.0", "") else copy.host_ip
        if copy.container_ip:
            paths.append((f"load balancer source {source}", Packet(
                hook="forward", src=src, dst=copy.container_ip, dport=copy.container_port, orig_dst=public,
                orig_dport=copy.host_port, in_iface=facts.outward_interface, out_iface=facts.bridge_interface)))
        else:
            paths.append((f"load balancer source {source}", Packet(
                hook="input", src=src, dst=public, dport=copy.host_port, in_iface=facts.outward_interface)))
    return paths


def stranger_packets(facts: Facts, copy: Copy) -> list[tuple[str, Packet]]:
    """How a host that is not a load balancer could try to reach ``copy``."""
    if not copy.container_ip:
        return []
    paths = []
    common = {"src": STRANGER, "dst": copy.container_ip, "dport": copy.container_port,
              "in_iface": facts.outward_interface, "out_iface": facts.bridge_interface}
    if copy.host_ip in ("127.0.0.1", ""):
        paths.append(("127.0.0.1 sent through the link (moby #45610)",
                      Packet(hook="forward", orig_dst="127.0.0.1", orig_dport=copy.host_port, **common)))
    else:
        public = facts.outward_address if copy.host_ip == "0.0.0.0" else copy.host_ip
        paths.append((f"host port {public}:{copy.host_port}",
                      Packet(hook="forward", orig_dst=public, orig_dport=copy.host_port, **common)))
    paths.append((f"its bridge address {copy.container_ip}:{copy.container_port} routed via this host (moby #41872)",
                  Packet(hook="forward", **common)))
    return paths


def _rule_fix(verdict: Verdict) -> str:
    rule = verdict.decided_by
    if rule is None:
        return f"the {verdict.policy}: add an accept for the load balancer's traffic before the policy applies"
    if rule.backend == "iptables":
        return f"delete it (`iptables -t {rule.table} -D {rule.chain} {rule.position}`) or put an accept for the load balancer before it"
    family, _, table = rule.table.partition(" ")
    return f"delete it (`nft delete rule {family} {table} {rule.chain} handle {rule.position}`) or accept the load balancer before it"


def _describe(verdict: Verdict) -> str:
    rule = verdict.decided_by
    if rule is None:
        return f"the {verdict.policy}"
    return f"{rule.backend} rule `{rule.text}` ({rule.table} {rule.chain} #{rule.position})"


def _load_balancer_paths(facts: Facts) -> list[Finding]:
    if not facts.rulesets:
        return []
    blocked: dict[tuple[str, str], Finding] = {}
    warnings: dict[str, Finding] = {}
    checked = 0
    for copy in _samples(facts):
        for who, packet in lb_packets(facts, copy):
            checked += 1
            verdict = evaluate(facts.rulesets, packet)
            if verdict.action != "accept":
                key = (who, _describe(verdict))
                if key not in blocked:
                    blocked[key] = Finding(
                        "firewall.load-balancer", "error",
                        f"{_describe(verdict)} {verdict.action}s traffic from {who} to {_target(copy)}",
                        _rule_fix(verdict))
            for rule in verdict.uncertain:
                warnings.setdefault(rule.text, Finding(
                    "firewall.load-balancer", "warning",
                    f"cannot tell whether {rule.backend} rule `{rule.text}` ({rule.table} {rule.chain}) drops traffic from {who}",
                    "check it by hand, or make its matches plain addresses and ports"))
    if facts.lb_sources and facts.publish_ip in LOOPBACK_PUBLISH:
        warnings["(publish)"] = Finding(
            "firewall.load-balancer", "warning",
            f"copies are published on {facts.publish_ip}: the load balancer sources {', '.join(facts.lb_sources)} "
            "on other hosts cannot reach them",
            "run the server with --publish-ip 0.0.0.0 (or this host's address) and --firewall managed")
    if blocked:
        return list(blocked.values()) + list(warnings.values())
    return [Finding("firewall.load-balancer", "ok", f"no firewall rule drops load balancer traffic to the range ({checked} paths checked)"),
            *warnings.values()]


def _target(copy: Copy) -> str:
    if copy.task == "(sample)":
        return f"host port {copy.host_port}"
    return f"task {copy.task} ({copy.container}, host port {copy.host_port})"


def _exposure(facts: Facts) -> list[Finding]:
    if not facts.rulesets:
        return []
    findings = []
    fix = ("run the server with --firewall guard (the default) or managed, or apply the rules printed below"
           if facts.firewall_mode == "off" else "portside's chain is missing or bypassed: see firewall.guard")
    for copy in facts.copies:
        for how, packet in stranger_packets(facts, copy):
            verdict = evaluate(facts.rulesets, packet)
            if verdict.action == "accept":
                findings.append(Finding(
                    "firewall.exposed", "error",
                    f"{_target(copy)} port {copy.container_port} is reachable from any host: {how}", fix))
    if facts.copies and not findings:
        findings.append(Finding("firewall.exposed", "ok", f"no copy is reachable except through a load balancer ({len(facts.copies)} ports checked)"))
    return findings


def _listeners(facts: Facts) -> list[Finding]:
    """Internet-facing listeners a client on another host cannot reach (a warning: it may be meant)."""
    if not facts.rulesets:
        return []
    findings = []
    public = [listener for listener in facts.listeners if listener.public]
    for listener in public:
        packet = Packet(hook="input", src=STRANGER, dst=facts.outward_address, dport=listener.port,
                        in_iface=facts.outward_interface)
        verdict = evaluate(facts.rulesets, packet)
        if verdict.action != "accept":
            findings.append(Finding(
                "firewall.listeners", "warning",
                f"{_describe(verdict)} {verdict.action}s clients on other hosts before they reach {listener.name}",
                _rule_fix(verdict).replace("the load balancer", "its clients")))
    if public and not findings:
        findings.append(Finding("firewall.listeners", "ok", f"{len(public)} internet-facing listener(s) reachable from other hosts"))
    return findings


# -- open files -------------------------------------------------------------------------------


def _open_files(facts: Facts) -> list[Finding]:
    """The server's open-file limit: a client connection through a listener takes one, its target one more."""
    if facts.open_files is None:
        return []
    soft, hard = ("unlimited" if n == UNLIMITED else str(n) for n in facts.open_files)
    if facts.server:  # judge the soft limit, when listeners need it
        effective, at_stake = facts.open_files[0], bool(facts.listeners)
        limits = f"open files: soft limit {soft}, hard limit {hard}" + (
            " (the server could not raise the soft limit to the hard one: see its log)" if soft != hard else "")
    else:  # before a server starts: judge what it will raise its soft limit to
        effective, at_stake = facts.open_files[1], True
        limits = f"open files: a server started here raises its soft limit {soft} to the hard limit {hard}"
    if effective == UNLIMITED or effective >= MIN_OPEN_FILES:
        return [Finding("limits.open-files", "ok", limits)]
    if not at_stake:
        return [Finding("limits.open-files", "info", limits)]
    return [Finding(
        "limits.open-files", "warning",
        f"{limits}: below {MIN_OPEN_FILES}, listeners refuse clients once about {max(1, effective // 2)} "
        "connections are proxied (each takes one descriptor, and its target connection another)",
        f"raise the hard limit to {MIN_OPEN_FILES} or more where the server starts (systemd LimitNOFILE=, "
        "docker run --ulimit nofile=N:N, `ulimit -Hn N` as root) and restart it; it raises its soft limit itself",
    )]


CHECKS: tuple[tuple[str, Callable[[Facts], list[Finding]]], ...] = (
    ("range", lambda facts: [_range(facts)]),
    ("range.ephemeral", _ephemeral_overlap),
    ("range.reserved", _reserved),
    ("range.capacity", _capacity),
    ("firewall.guard", _guard),
    ("firewall.load-balancer", _load_balancer_paths),
    ("firewall.exposed", _exposure),
    ("firewall.listeners", _listeners),
    ("limits.open-files", _open_files),
)


def summary_line(findings: Sequence[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning")}
    return f"{counts['error']} error(s), {counts['warning']} warning(s)"
