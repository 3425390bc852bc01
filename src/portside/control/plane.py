"""The control plane's shared context: store, agent, settings and the local container instance."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from portside.agent.agent import HostAgent
from portside.config import ServerConfig
from portside.control.store import Store
from portside.core import arns
from portside.core.lb.runtime import LbRuntime
from portside.errors import NotFoundError


@dataclass
class ControlPlane:
    config: ServerConfig
    store: Store
    agent: HostAgent
    instance_arn: str
    clock: Callable[[], float] = time.time
    # Ports the server itself holds on this host (API, listeners): part of registered PORTS.
    own_ports: set[int] = field(default_factory=set)
    # Where the API listens (host, port): no listener or target may point back at it (a loop
    # that would let load-balanced traffic drive the API from 127.0.0.1).
    api_address: tuple[str, int] | None = None
    # The load balancer's data plane (proxy); None until the server attaches one. The ELBv2 API
    # (control/elbv2) binds listeners through it and pushes every configuration change to it.
    lb: LbRuntime | None = None
    # Called with a topic ("targets", "tasks", "services") whenever that kind of state changed,
    # so controllers wake at once instead of waiting for their periodic resync.
    watchers: list[Callable[[str], None]] = field(default_factory=list)
    # Stops a task the way its owner wants (the service controller drains its targets first);
    # None means straight to the agent.
    task_stopper: Callable[[str, str, str], Any] | None = None
    # Runs the doctor's checks for a service that was created or scaled (control/doctor.py).
    preflight: Callable[[str], None] | None = None
    # Answers Portside.Doctor: the doctor's report for this host.
    doctor_report: Callable[[], Awaitable[dict[str, Any]]] | None = None

    def changed(self, topic: str) -> None:
        for watcher in self.watchers:
            watcher(topic)

    @property
    def account(self) -> str:
        return self.config.account_id

    def cluster_arn(self, region: str, name: str) -> str:
        return arns.cluster_arn(region, self.account, name)

    def require_cluster(self, region: str, name_or_arn: str | None) -> dict[str, Any]:
        """The ACTIVE cluster named (default ``default``), or ClusterNotFoundException."""
        name = arns.cluster_name(name_or_arn or "default")
        cluster = self.store.get_cluster(region, name)
        if cluster is None or cluster["status"] != "ACTIVE":
            raise NotFoundError("Cluster not found.", "ClusterNotFoundException")
        return cluster

    def is_local_cluster(self, region: str, cluster: str) -> bool:
        return region == self.config.region and cluster == self.config.extra.get("cluster", "default")

    def az(self, region: str) -> str:
        return f"{region}a"
