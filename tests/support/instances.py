"""Register a container instance the way an agent does, for tests that run a control plane without one."""

from __future__ import annotations

from typing import Any

from portside.agent import host
from portside.agent.registration import registration
from portside.control import agent_protocol
from portside.control.plane import ControlPlane


def register_instance(
    plane: ControlPlane, *, cpu: int = 2048, memory: int = 4096, address: str = "127.0.0.1",
    instance_id: str | None = None, arn: str | None = None, zone: str | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """RegisterContainerInstance through the agent protocol's operation, as this host (by default)."""
    request = registration(
        cluster=plane.config.extra.get("cluster", "default"), region=plane.config.region,
        instance_id=instance_id or host.host_instance_id(), address=address, zone=zone, docker_version="test",
        cpu_units=cpu, memory_mib=memory, reserved_tcp=list(plane.config.reserved_ports_tcp),
        reserved_udp=list(plane.config.reserved_ports_udp), attributes=attributes or {}, awsvpc=True,
    )
    if arn or plane.instance_arn:
        request["containerInstanceArn"] = arn or plane.instance_arn
    return agent_protocol.register_container_instance(plane, plane.config.region, request)["containerInstance"]


def register_host(plane: ControlPlane, instance_id: str, *, address: str = "10.0.0.2", awsvpc: bool = False) -> str:
    """Register another host (2048 CPU units, 4096 MiB) as its agent would; its container instance ARN."""
    request = registration(
        cluster=plane.config.extra.get("cluster", "default"), region=plane.config.region, instance_id=instance_id,
        address=address, zone=None, docker_version="test", cpu_units=2048, memory_mib=4096, reserved_tcp=[],
        reserved_udp=[], attributes={}, awsvpc=awsvpc,
    )
    answer = agent_protocol.register_container_instance(plane, plane.config.region, request)
    return str(answer["containerInstance"]["containerInstanceArn"])


class Clock:
    """A wall clock a test moves by hand (``clock.now += 5``)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now
