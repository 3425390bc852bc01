"""The control plane's shared context: store, settings, the agents it has heard from, and hooks."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from portside.config import ServerConfig
from portside.control.assignment_waits import AssignmentWaits
from portside.control.secrets_key import SecretsKey
from portside.control.store import Store
from portside.control.store.database import StoreUnavailable
from portside.core import arns
from portside.core.lb.runtime import LbRuntime
from portside.core.task import Task
from portside.errors import NotFoundError

#: A replica writes an agent's or a node's presence to the store at most this often (seconds).
PRESENCE_WRITE_S = 1.0


@dataclass
class ControlPlane:
    config: ServerConfig
    store: Store
    # The server's own host's container instance (its agent runs in this process): empty until
    # that agent registered, or when the server runs no agent of its own.
    instance_arn: str = ""
    clock: Callable[[], float] = time.time
    # When each container instance's agent last called (control/agent_protocol.py, ``saw_agent``);
    # an agent silent for config.agent_ttl_s is disconnected. A replica shares it through the
    # store's presence (``ChangeFeed`` merges the others'); after a restart of the only server,
    # every agent gets a full TTL to call again.
    agent_seen: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    # Wakes agents' assignment polls when a task of their instance is written.
    assignment_waits: AssignmentWaits = field(default_factory=AssignmentWaits)
    # The random generator placement draws from (the random strategy, ties): one per control plane,
    # so a test or a benchmark makes placements repeatable by giving a seeded one.
    rng: random.Random = field(default_factory=random.Random)
    # Called with the stored task after an agent reported a change of it.
    task_watchers: list[Callable[[Task], None]] = field(default_factory=list)
    # Where the API listens (host, port): no listener or target may point back at it (a loop
    # that would let load-balanced traffic drive the API from 127.0.0.1).
    api_address: tuple[str, int] | None = None
    # The load balancer's data plane (proxy); None until the server attaches one. The ELBv2 API
    # (control/elbv2) binds listeners through it and pushes every configuration change to it.
    lb: LbRuntime | None = None
    # Called with a topic ("targets", "tasks", "services") whenever that kind of state changed,
    # so controllers wake at once instead of waiting for their periodic resync.
    watchers: list[Callable[[str], None]] = field(default_factory=list)
    # Called after every published load balancer configuration (control/elbv2/config.publish):
    # wakes the WatchRoutes polls of load-balancer nodes (control/routes_snapshot.py).
    routes_watchers: list[Callable[[], None]] = field(default_factory=list)
    # When a load-balancer node last asked for the routing snapshot (clock time; 0: never).
    routes_seen: float = 0.0
    # Load-balancer nodes' source addresses -> when each last asked for routes (agent_protocol.lb_sources;
    # shared between replicas as agent_seen is).
    lb_nodes: dict[str, float] = field(default_factory=dict)
    # Stored listeners this process's runtime could not bind at the last try (their port is taken).
    unbound_listeners: set[str] = field(default_factory=set)
    # When this process last wrote each presence to the store ((kind, key) -> clock time).
    _presence_written: dict[tuple[str, str], float] = field(default_factory=dict)
    # Runs the doctor's checks for a service that was created or scaled (control/doctor.py).
    preflight: Callable[[str], None] | None = None
    # Answers Portside.Doctor: the doctor's report for this host.
    doctor_report: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # Seals SSM SecureString and Secrets Manager values (control/secrets_key.py); None: no secrets here.
    secrets_key: SecretsKey | None = None

    def __post_init__(self) -> None:
        self.store.task_watchers.append(self.assignment_waits.notify)

    def task_changed(self, task: Task) -> None:
        for watcher in self.task_watchers:
            watcher(task)

    def agent_connected(self, instance_arn: str) -> bool:
        seen = self.agent_seen.get(instance_arn, self.started_at)
        return self.clock() - seen <= self.config.agent_ttl_s

    def live_tasks(self, region: str | None = None, cluster: str | None = None) -> list[Task]:
        """Tasks not yet STOPPED (of one region and cluster when given), as the store has them."""
        if region is not None and cluster is not None:
            return self.store.live_tasks_in(region, cluster)
        return [
            t for t in self.store.live_tasks()
            if (region is None or t.region == region) and (cluster is None or t.cluster == cluster)
        ]

    @property
    def replicated(self) -> bool:
        """True when other replicas may share the store (PostgreSQL): changes are logged for them."""
        return self.store.dialect != "sqlite"

    def changed(self, topic: str) -> None:
        """``topic`` changed: wake this process's watchers, and log it for the other replicas'."""
        if self.replicated:
            self.store.record_change(topic)
        self.notify_local(topic)

    def notify_local(self, topic: str) -> None:
        for watcher in self.watchers:
            watcher(topic)

    def saw_agent(self, instance_arn: str) -> None:
        """The instance's agent called now."""
        self.agent_seen[instance_arn] = self._seen("agent", instance_arn)

    def saw_lb_node(self, address: str) -> None:
        """The load-balancer node at ``address`` asked for routes now."""
        self.lb_nodes[address] = self._seen("lb-node", address)

    def _seen(self, kind: str, key: str) -> float:
        now = self.clock()
        if self.replicated and now - self._presence_written.get((kind, key), 0.0) >= PRESENCE_WRITE_S:
            self._presence_written[(kind, key)] = now
            try:
                self.store.mark_seen(kind, key, now)
            except StoreUnavailable:
                pass  # seen here; the others learn of it once the database is back
        return now

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
