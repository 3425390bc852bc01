"""What an agent registers its host as: an ECS container instance (RegisterContainerInstance's request)."""

from __future__ import annotations

import json
from typing import Any

from portside import __version__
from portside.agent import host

DEFAULT_INSTANCE_TYPE = "portside.local"
CAPABILITIES = (
    "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18",
    "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.container-health-check",
    "ecs.capability.container-ordering",
    "ecs.capability.container-port-range",
)


def registration(
    *,
    cluster: str,
    region: str,
    instance_id: str,
    address: str,
    zone: str | None,
    docker_version: str,
    cpu_units: int,
    memory_mib: int,
    reserved_tcp: list[int],
    reserved_udp: list[int],
    attributes: dict[str, str],
    awsvpc: bool,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
) -> dict[str, Any]:
    """The RegisterContainerInstance request of this host.

    As ECS's agent does, the host describes itself in ``instanceIdentityDocument`` (instance id,
    private address, zone, type): the control plane reaches its copies at ``privateIp``.
    """
    zone = zone or f"{region}a"
    document = {"instanceId": instance_id, "privateIp": address, "availabilityZone": zone,
                "instanceType": instance_type, "region": region}
    builtin = {
        "ecs.os-type": "linux",
        "ecs.os-family": "LINUX",
        "ecs.cpu-architecture": host.cpu_architecture(),
        "ecs.availability-zone": zone,
        "ecs.instance-type": instance_type,
        "ecs.ami-id": "ami-portside",
    }
    listed = [{"name": k, "value": v} for k, v in {**builtin, **attributes}.items()]
    capabilities = list(CAPABILITIES) + (["ecs.capability.task-eni"] if awsvpc else [])
    listed.extend({"name": c} for c in capabilities)
    return {
        "cluster": cluster,
        "instanceIdentityDocument": json.dumps(document),
        "totalResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu_units},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": memory_mib},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": [str(p) for p in sorted(set(reserved_tcp))]},
            {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": [str(p) for p in sorted(set(reserved_udp))]},
        ],
        "versionInfo": {
            "agentVersion": f"portside-{__version__}",
            "agentHash": "portside",
            "dockerVersion": f"DockerVersion: {docker_version}",
        },
        "attributes": listed,
    }
