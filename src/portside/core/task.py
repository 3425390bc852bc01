"""The task record: what the control plane and the agent know about one task.

A ``Task`` is plain data: it is stored as JSON, rendered to ECS's ``Task`` shape by
``to_api``, and changed only through the small methods below, which keep the
lifecycle forward-only (``core.lifecycle``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from portside.core.lifecycle import (
    STATUS_TIMESTAMP,
    ContainerStatus,
    TaskStatus,
    next_task_status,
    task_health,
)


@dataclass
class PortPlan:
    """One portMapping as the agent will publish it: a single port or a range."""

    container_port: int | None
    host_port: int | None
    protocol: str = "tcp"
    container_port_range: str | None = None
    host_port_range: str | None = None
    dynamic: bool = False


@dataclass
class Container:
    name: str
    container_arn: str
    image: str
    docker_name: str
    essential: bool = True
    cpu: int = 0
    memory: int | None = None
    memory_reservation: int | None = None
    docker_id: str | None = None
    last_status: ContainerStatus = ContainerStatus.PENDING
    exit_code: int | None = None
    reason: str | None = None
    health_status: str = "UNKNOWN"
    has_health_check: bool = False
    ports: list[PortPlan] = field(default_factory=list)
    network_bindings: list[dict[str, Any]] = field(default_factory=list)
    private_ip: str | None = None
    bridge_ip: str | None = None  # bridge mode: the container's address on Docker's bridge

    def to_api(self, task_arn: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "containerArn": self.container_arn,
            "taskArn": task_arn,
            "name": self.name,
            "image": self.image,
            "lastStatus": self.last_status.name,
            "networkBindings": list(self.network_bindings),
            "networkInterfaces": [],
            "healthStatus": self.health_status,
            "cpu": str(self.cpu),
        }
        if self.docker_id:
            out["runtimeId"] = self.docker_id
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.reason:
            out["reason"] = self.reason[:1024]
        if self.memory is not None:
            out["memory"] = str(self.memory)
        if self.memory_reservation is not None:
            out["memoryReservation"] = str(self.memory_reservation)
        if self.private_ip:
            out["networkInterfaces"] = [{"attachmentId": "", "privateIpv4Address": self.private_ip}]
        return out


@dataclass
class Task:
    arn: str
    id: str
    region: str
    cluster: str
    cluster_arn: str
    task_definition_arn: str
    family: str
    revision: int
    network_mode: str
    container_instance_arn: str
    containers: list[Container]
    cpu: int
    memory: int
    created_at: float
    last_status: TaskStatus = TaskStatus.PENDING
    desired_status: str = "RUNNING"
    started_by: str | None = None
    group: str | None = None
    launch_type: str = "EC2"
    overrides: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)
    timestamps: dict[str, float] = field(default_factory=dict)
    stop_code: str | None = None
    stopped_reason: str | None = None
    version: int = 1
    attachment_id: str | None = None
    private_ip: str | None = None
    client_token: str | None = None
    enable_execute_command: bool = False
    # Load balancer targets registered for this task: [target group ARN, target id, port]
    # (written by the service controller, which deregisters them before the task stops).
    lb_targets: list[list[Any]] = field(default_factory=list)

    # -- transitions (the agent writes last_status, the control plane desired_status)

    def advance(self, status: TaskStatus, now: float) -> bool:
        """Move last_status forward to ``status``; return whether anything changed."""
        new = next_task_status(self.last_status, status, f"task {self.id}")
        if new == self.last_status:
            return False
        self.last_status = new
        for reached, stamp in STATUS_TIMESTAMP.items():
            if new >= reached and stamp not in self.timestamps:
                if reached is TaskStatus.RUNNING and new is not TaskStatus.RUNNING:
                    continue  # skipped RUNNING (stopped before it ran): no startedAt, as in ECS
                self.timestamps[stamp] = now
        self.version += 1
        return True

    def request_stop(self, stop_code: str, reason: str, now: float) -> bool:
        """Set desired STOPPED with ECS's reason; the first reason given wins, as in ECS."""
        if self.desired_status == "STOPPED":
            return False
        self.desired_status = "STOPPED"
        self.stop_code = stop_code
        self.stopped_reason = reason
        self.timestamps.setdefault("stoppingAt", now)
        self.version += 1
        return True

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def health_status(self) -> str:
        return task_health([c.health_status for c in self.containers if c.essential and c.has_health_check])

    @property
    def is_stopped(self) -> bool:
        return self.last_status is TaskStatus.STOPPED

    # -- rendering and persistence

    def to_api(self, region_az: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.task_definition_arn,
            "containerInstanceArn": self.container_instance_arn,
            "containers": [c.to_api(self.arn) for c in self.containers],
            "lastStatus": self.last_status.name,
            "desiredStatus": self.desired_status,
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "launchType": self.launch_type,
            "createdAt": self.created_at,
            "version": self.version,
            "availabilityZone": region_az,
            "connectivity": "CONNECTED",
            "healthStatus": self.health_status,
            "overrides": self.overrides or {"containerOverrides": []},
            "tags": list(self.tags),
            "attachments": [],
            "enableExecuteCommand": self.enable_execute_command,
        }
        for key in ("startedBy", "group"):
            value = self.started_by if key == "startedBy" else self.group
            if value:
                out[key] = value
        if self.stop_code:
            out["stopCode"] = self.stop_code
        if self.stopped_reason:
            out["stoppedReason"] = self.stopped_reason
        for stamp, at in self.timestamps.items():
            out[stamp] = at
        if "startedAt" in self.timestamps:
            out["connectivityAt"] = self.timestamps["startedAt"]
        if self.attachment_id:
            out["attachments"] = [_eni_attachment(self)]
        return out

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        data = dict(data)
        containers = []
        for c in data.pop("containers"):
            c = dict(c)
            c["ports"] = [PortPlan(**p) for p in c.get("ports", [])]
            c["last_status"] = ContainerStatus(c["last_status"])
            containers.append(Container(**c))
        data["last_status"] = TaskStatus(data["last_status"])
        return cls(containers=containers, **data)


def _eni_attachment(task: Task) -> dict[str, Any]:
    details = [
        {"name": "subnetId", "value": "subnet-portside"},
        {"name": "networkInterfaceId", "value": f"eni-{task.id[:17]}"},
        {"name": "privateIPv4Address", "value": task.private_ip or ""},
    ]
    status = "DELETED" if task.is_stopped else ("ATTACHED" if task.private_ip else "PRECREATED")
    return {"id": task.attachment_id, "type": "ElasticNetworkInterface", "status": status, "details": details}
