"""ARNs and ids in AWS's long format (spec ecs.md §6.3)."""

from __future__ import annotations

import hashlib
import re

_ARN = re.compile(r"^arn:aws:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d*):(?P<resource>.+)$")


def ecs_arn(region: str, account: str, resource: str) -> str:
    return f"arn:aws:ecs:{region}:{account}:{resource}"


def cluster_arn(region: str, account: str, name: str) -> str:
    return ecs_arn(region, account, f"cluster/{name}")


def task_definition_arn(region: str, account: str, family: str, revision: int) -> str:
    return ecs_arn(region, account, f"task-definition/{family}:{revision}")


def task_arn(region: str, account: str, cluster: str, task_id: str) -> str:
    return ecs_arn(region, account, f"task/{cluster}/{task_id}")


def container_instance_arn(region: str, account: str, cluster: str, instance_id: str) -> str:
    return ecs_arn(region, account, f"container-instance/{cluster}/{instance_id}")


def split_arn(arn: str) -> dict[str, str] | None:
    match = _ARN.match(arn)
    return match.groupdict() if match else None


def last_segment(name_or_arn: str) -> str:
    """The short name of a resource given by name or ARN (``cluster/web`` -> ``web``)."""
    if name_or_arn.startswith("arn:"):
        parts = split_arn(name_or_arn)
        if parts:
            return parts["resource"].rsplit("/", 1)[-1]
    return name_or_arn


def cluster_name(name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        parts = split_arn(name_or_arn)
        if parts and parts["resource"].startswith("cluster/"):
            return parts["resource"][len("cluster/") :]
    return name_or_arn


def ec2_instance_id(machine_id: str) -> str:
    """``i-`` and 17 hex digits, stable for one machine-id."""
    return "i-" + hashlib.sha256(("portside:" + machine_id.strip()).encode()).hexdigest()[:17]


def stable_hex_id(*parts: str) -> str:
    """A 32-hex-digit id derived from ``parts`` (stable across restarts)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
