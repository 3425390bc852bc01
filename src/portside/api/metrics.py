"""``GET /metrics``: Prometheus text of the load balancer, the services and scaling.

Everything here is read from counters the data plane and controllers already
keep; rendering costs nothing on the request path.
"""

from __future__ import annotations

from typing import Any

import portside.proxy
from portside import open_file_limit
from portside.control.plane import ControlPlane
from portside.control.store.database import StoreUnavailable
from portside.proxy.targets import LATENCY_BUCKETS_S


def _labels(**values: Any) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in values.items())
    return "{" + inner + "}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _limit(value: int) -> str:
    return "+Inf" if value == open_file_limit.UNLIMITED else str(value)


def render_metrics(plane: ControlPlane, scaler: Any = None, firewall: Any = None, leadership: Any = None) -> str:
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    if leadership is not None:
        family("portside_leader", "gauge", "1 while this replica holds the controllers' lease (runs the controllers).")
        out.append(f"portside_leader {int(leadership.is_leader)}")
        family("portside_leader_epoch", "gauge", "The lease's epoch while this replica leads (0 otherwise).")
        out.append(f"portside_leader_epoch {leadership.epoch}")
        family("portside_leader_elections_total", "counter", "Times this replica became the leader.")
        out.append(f"portside_leader_elections_total {leadership.elections}")
    try:
        revision = plane.store.revision()
    except StoreUnavailable:
        revision = None
    family("portside_store_available", "gauge", "1 while the store answers.")
    out.append(f"portside_store_available {int(revision is not None)}")
    if revision is not None:
        family("portside_store_revision", "gauge", "The store's last committed revision.")
        out.append(f"portside_store_revision {revision}")

    lb = plane.lb
    groups = getattr(lb, "groups", {}) if lb is not None else {}
    family("portside_proxy_compiled", "gauge", "1 when the proxy's hot path runs as modules mypyc compiled at install.")
    out.append(f"portside_proxy_compiled {int(portside.proxy.COMPILED)}")
    limit = open_file_limit.current()
    family("portside_nofile_soft_limit", "gauge",
           "The server's open-file soft limit (RLIMIT_NOFILE), raised to the hard limit at start.")
    out.append(f"portside_nofile_soft_limit {_limit(limit.soft)}")
    family("portside_nofile_hard_limit", "gauge", "The server's open-file hard limit (RLIMIT_NOFILE).")
    out.append(f"portside_nofile_hard_limit {_limit(limit.hard)}")
    family("portside_lb_requests_total", "counter", "Requests forwarded to a target group.")
    for arn, group in groups.items():
        out.append(f"portside_lb_requests_total{_labels(target_group=arn)} {group.requests}")
    family("portside_lb_responses_total", "counter", "Target responses by target group and status code.")
    for arn, group in groups.items():
        for code, count in sorted(group.by_code.items()):
            out.append(f"portside_lb_responses_total{_labels(target_group=arn, code=code)} {count}")
    family("portside_lb_request_duration_seconds", "histogram", "Time from choosing a target to the end of its response.")
    for arn, group in groups.items():
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), group.latency_counts):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f"portside_lb_request_duration_seconds_bucket{_labels(target_group=arn, le=le)} {cumulative}")
        out.append(f"portside_lb_request_duration_seconds_sum{_labels(target_group=arn)} {group.latency_sum_s}")
        out.append(f"portside_lb_request_duration_seconds_count{_labels(target_group=arn)} {cumulative}")
    family("portside_lb_elb_responses_total", "counter", "Responses the load balancer generated itself, by status code.")
    for code, count in sorted(getattr(lb, "elb_errors", {}).items()):
        out.append(f"portside_lb_elb_responses_total{_labels(code=code)} {count}")
    family("portside_lb_client_connections", "gauge", "Client connections a listener holds now.")
    for arn, listener in getattr(lb, "listeners", {}).items():
        out.append(f"portside_lb_client_connections{_labels(listener=arn)} {len(listener.connections)}")
    family("portside_lb_client_connections_limit", "gauge", "Client connections each listener may hold (--max-client-connections).")
    out.append(f"portside_lb_client_connections_limit {getattr(lb, 'max_client_connections', 0)}")
    family("portside_lb_refused_connections_total", "counter",
           "Client connections refused at the limit, with no idle connection to close for room.")
    out.append(f"portside_lb_refused_connections_total {getattr(lb, 'refused_connections', 0)}")
    family("portside_lb_evicted_connections_total", "counter", "Idle client connections closed at the limit to make room.")
    out.append(f"portside_lb_evicted_connections_total {getattr(lb, 'evicted_connections', 0)}")
    family("portside_lb_retries_total", "counter", "Requests retried on another target.")
    out.append(f"portside_lb_retries_total {getattr(lb, 'retries', 0)}")
    family("portside_lb_target_health", "gauge", "1 for the state each registered target is in.")
    for arn, group in groups.items():
        for target in group.targets.values():
            out.append(
                f"portside_lb_target_health{_labels(target_group=arn, target=f'{target.id}:{target.port}', state=target.state)} 1"
            )
    family("portside_service_desired_tasks", "gauge", "A service's desired count.")
    family("portside_service_running_tasks", "gauge", "A service's RUNNING tasks.")
    running: dict[tuple[str, str, str], int] = {}
    for task in plane.store.live_tasks():
        if task.group and task.group.startswith("service:") and task.last_status.name == "RUNNING":
            key = (task.region, task.cluster, task.group[8:])
            running[key] = running.get(key, 0) + 1
    for body in plane.store.list_services():
        if body["status"] == "INACTIVE":
            continue
        key = (body["_region"], body["clusterArn"].rsplit("/", 1)[-1], body["serviceName"])
        labels = _labels(service=body["serviceArn"])
        out.append(f"portside_service_desired_tasks{labels} {body['desiredCount']}")
        out.append(f"portside_service_running_tasks{labels} {running.get(key, 0)}")
    family("portside_scaling_actions_total", "counter", "Scaling actions taken, by service and direction.")
    for (service, direction), count in sorted(getattr(scaler, "actions", {}).items()):
        out.append(f"portside_scaling_actions_total{_labels(service=service, direction=direction)} {count}")
    if firewall is not None:  # agent.firewall.FirewallKeeper
        labels = _labels(chain=firewall.base.chain, mode=firewall.base.mode)
        family("portside_firewall_chain_in_place", "gauge",
               "1 while the chain is in step: the last sync wrote or found the planned rules; 0 while syncs fail.")
        out.append(f"portside_firewall_chain_in_place{labels} {int(firewall.in_step)}")
        family("portside_firewall_sync_failures_total", "counter", "Syncs of the chain that failed (each is retried with backoff).")
        out.append(f"portside_firewall_sync_failures_total{labels} {firewall.sync_failures}")
        family("portside_firewall_guarded_bridges", "gauge", "Docker bridges whose containers the chain guards as a whole.")
        out.append(f"portside_firewall_guarded_bridges{labels} {len(firewall.plan.bridges) if firewall.plan else 0}")
        family("portside_firewall_repairs_total", "counter", "Times the chain was found changed from outside and restored.")
        out.append(f"portside_firewall_repairs_total{labels} {firewall.repairs}")
    return "\n".join(out) + "\n"
