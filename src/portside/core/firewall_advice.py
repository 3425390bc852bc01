"""Rules to copy into firewalls portside does not manage, derived from the range in effect.

Each recipe admits the dynamic host port range from the load balancers only. Where
the firewall filters forwarded traffic (nftables, iptables/ufw) the rules match the
connection's *original* destination port, because Docker's DNAT has already
rewritten the port to the container's by the time the forward hook sees it.
Security groups and NACLs see the host port, so they take the range as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from portside.core.ports import PortRange

PLACEHOLDER_CIDR = "LB_CIDR"
PLACEHOLDER_SG = "sg-LOADBALANCER"
INSTANCE_SG = "sg-INSTANCES"
NACL = "acl-SUBNET"


def advice(port_range: PortRange, lb_sources: Sequence[str]) -> dict[str, str]:
    """Firewall name -> text to paste, for the range and the load balancers' source CIDRs."""
    sources = list(lb_sources) or [PLACEHOLDER_CIDR]
    lo, hi = port_range.start, port_range.end
    return {
        "aws-security-group": _security_group(lo, hi, list(lb_sources)),
        "aws-network-acl": _nacl(lo, hi, sources),
        "nftables": _nftables(lo, hi, sources),
        "iptables": _iptables(lo, hi, sources),
        "ufw": _ufw(lo, hi, sources),
    }


def _security_group(lo: int, hi: int, sources: list[str]) -> str:
    pairs = f"UserIdGroupPairs=[{{GroupId={PLACEHOLDER_SG}}}]"
    if sources:
        pairs = "IpRanges=[" + ",".join(f"{{CidrIp={cidr}}}" for cidr in sources) + "]"
    return (
        f"# On the instances' security group: the dynamic range from the load balancer only.\n"
        f"aws ec2 authorize-security-group-ingress --group-id {INSTANCE_SG} \\\n"
        f"  --ip-permissions 'IpProtocol=tcp,FromPort={lo},ToPort={hi},{pairs}'\n"
    )


def _nacl(lo: int, hi: int, sources: list[str]) -> str:
    lines = ["# NACLs are stateless: admit the range inbound and the replies outbound."]
    for number, cidr in enumerate(sources, start=100):
        entry = f"aws ec2 create-network-acl-entry --network-acl-id {NACL} --rule-number {number} --cidr-block {cidr}"
        lines.append(f"{entry} --ingress --protocol tcp --port-range From={lo},To={hi} --rule-action allow")
        lines.append(f"{entry} --egress --protocol tcp --port-range From=1024,To=65535 --rule-action allow")
    return "\n".join(lines) + "\n"


def _nftables(lo: int, hi: int, sources: list[str]) -> str:
    return (
        "# nft -f FILE; runs before Docker's own forward rules (priority filter - 1).\n"
        "table inet portside_range {\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter - 1; policy accept;\n"
        "\t\tct state established,related accept\n"
        f"\t\tmeta l4proto tcp ct original proto-dst {lo}-{hi} ip saddr {{ {', '.join(sources)} }} accept\n"
        f"\t\tmeta l4proto tcp ct original proto-dst {lo}-{hi} drop\n"
        "\t}\n"
        "}\n"
    )


def _docker_user_lines(lo: int, hi: int, sources: list[str]) -> list[str]:
    lines = ["-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    lines += [f"-A DOCKER-USER -s {cidr} -p tcp -m conntrack --ctorigdstport {lo}:{hi} -j RETURN" for cidr in sources]
    lines.append(f"-A DOCKER-USER -p tcp -m conntrack --ctorigdstport {lo}:{hi} -j DROP")
    return lines


def _iptables(lo: int, hi: int, sources: list[str]) -> str:
    rules = [line.replace("-A ", "iptables -I ", 1) for line in _docker_user_lines(lo, hi, sources)]
    # -I puts each rule first, so insert them in reverse to keep their order.
    return "# DOCKER-USER sees packets after DNAT: match the original port (--ctorigdstport), not --dport.\n" + "\n".join(
        reversed(rules)
    ) + "\n"


def _ufw(lo: int, hi: int, sources: list[str]) -> str:
    body = "\n".join(_docker_user_lines(lo, hi, sources))
    allow = "\n".join(f"ufw allow proto tcp from {cidr} to any port {lo}:{hi}" for cidr in sources)
    return (
        "# ufw's own rules never see Docker's forwarded traffic; add this to /etc/ufw/after.rules,\n"
        "# then `ufw reload`. The `ufw allow` lines cover copies in host network mode.\n"
        f"*filter\n:DOCKER-USER - [0:0]\n{body}\nCOMMIT\n\n{allow}\n"
    )
