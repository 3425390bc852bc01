"""Read what the dashboard shows from the control plane, as the API would render it.

The one module of the dashboard that touches the store: everything it returns is plain data
(AWS-shaped documents, as DescribeServices, DescribeTargetHealth, ... answer them) that
``views.build_state`` turns into the page's state. Only the server's own region is read.
"""

from __future__ import annotations

from typing import Any

from portside.control import clusters, services
from portside.control.elbv2 import listeners, load_balancers, rules, target_groups, targets
from portside.control.plane import ControlPlane
from portside.core.task import Task

#: How far back the charts reach (seconds).
CHART_WINDOW_S = 3600
#: Scaling activities older than this are not shown.
ACTIVITY_WINDOW_S = 24 * 3600
ECS_NAMESPACE = "AWS/ECS"
ELB_NAMESPACE = "AWS/ApplicationELB"
PORTSIDE_ECS_NAMESPACE = "Portside/ECS"


def collect(plane: ControlPlane, now: float) -> dict[str, Any]:
    """Every document the page's views are built from (see ``views.build_state``)."""
    region = plane.config.region
    store = plane.store
    raw: dict[str, Any] = {"region": region, "now": now, "clusters": [], "loadBalancers": [], "targetGroups": []}
    for cluster in store.list_clusters(region):
        if cluster.get("status") != "ACTIVE":
            continue
        name = cluster["clusterName"]
        tasks = plane.live_tasks(region, name)
        by_instance: dict[str, list[Any]] = {}
        for task in tasks:
            by_instance.setdefault(task.container_instance_arn or "", []).append(task)
        raw["clusters"].append({
            "cluster": {k: v for k, v in cluster.items() if not k.startswith("_")},
            "instances": [
                clusters.describe_instance(plane, body, by_instance.get(body["containerInstanceArn"], []))
                for body in store.list_container_instances(region, name)
            ],
            "services": [services.render(plane, body, tasks) for body in store.list_services(region, name, "ACTIVE")],
            "tasks": [_task_document(plane, region, task) for task in tasks],
        })
    raw["loadBalancers"] = _load_balancers(plane, region)
    raw["targetGroups"] = _target_groups(plane, region)
    raw["scalingActivities"] = store.scaling_activities(region, "ecs", now - ACTIVITY_WINDOW_S, None, None)[:50]
    raw["metrics"] = _metrics(plane, region, raw, now)
    raw["alarms"] = store.alarms(region)
    return raw


def _task_document(plane: ControlPlane, region: str, task: Task) -> dict[str, Any]:
    """DescribeTasks' shape, plus the load balancer targets the service registered for it."""
    document = task.to_api(plane.az(region))
    document["loadBalancerTargets"] = [{"targetGroupArn": tg, "id": tid, "port": port} for tg, tid, port in task.lb_targets]
    return document


def _load_balancers(plane: ControlPlane, region: str) -> list[dict[str, Any]]:
    out = []
    for lb in load_balancers.describe_load_balancers(plane, region, {})["LoadBalancers"]:
        found = listeners.describe_listeners(plane, region, {"LoadBalancerArn": lb["LoadBalancerArn"]})["Listeners"]
        out.append({
            "loadBalancer": lb,
            "listeners": [
                {"listener": listener, "rules": rules.describe_rules(plane, region, {"ListenerArn": listener["ListenerArn"]})["Rules"]}
                for listener in found
            ],
        })
    return out


def _target_groups(plane: ControlPlane, region: str) -> list[dict[str, Any]]:
    out = []
    for tg in target_groups.describe_target_groups(plane, region, {})["TargetGroups"]:
        health = targets.describe_target_health(plane, region, {"TargetGroupArn": tg["TargetGroupArn"]})
        out.append({"targetGroup": tg, "health": health["TargetHealthDescriptions"]})
    return out


def _metrics(plane: ControlPlane, region: str, raw: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """Series for the charts: [{namespace, metric, dimensions, points: [[ts, count, sum, min, max]]}]."""
    store = plane.store
    start = now - CHART_WINDOW_S
    wanted: list[tuple[str, str, dict[str, str]]] = []
    for entry in raw["clusters"]:
        cluster = entry["cluster"]["clusterName"]
        for service in entry["services"]:
            dims = {"ClusterName": cluster, "ServiceName": service["serviceName"]}
            for metric in ("CPUUtilization", "MemoryUtilization"):
                wanted.append((ECS_NAMESPACE, metric, dims))
            for metric in ("DesiredTaskCount", "RunningTaskCount"):
                wanted.append((PORTSIDE_ECS_NAMESPACE, metric, dims))
        for instance in entry["instances"]:
            dims = {"ClusterName": cluster, "ContainerInstanceId": instance["containerInstanceArn"].rsplit("/", 1)[-1]}
            for metric in ("CPUUtilization", "MemoryUtilization"):
                wanted.append((PORTSIDE_ECS_NAMESPACE, metric, dims))
    tg_suffixes = {tg["targetGroup"]["TargetGroupArn"].split(":", 5)[-1] for tg in raw["targetGroups"]}
    for namespace, metric, dims in store.metric_keys(region, ELB_NAMESPACE, start):
        if metric in ("RequestCount", "TargetResponseTime") and dims.get("TargetGroup") in tg_suffixes:
            wanted.append((namespace, metric, dims))
    series = []
    for namespace, metric, dims in wanted:
        points = store.metric_datapoints(region, namespace, metric, dims, start, now + 1)
        if points:
            entry: dict[str, Any] = {
                "namespace": namespace, "metric": metric, "dimensions": dims,
                "points": [[p.ts, p.stats.sample_count, p.stats.sum, p.stats.minimum, p.stats.maximum, p.resolution] for p in points],
            }
            if metric == "TargetResponseTime":  # value-bucket counts per time bucket, for p99
                distributions = store.metric_distributions(region, namespace, metric, dims, start, now + 1)
                entry["distributions"] = {str(ts): {str(k): v for k, v in d.items()} for ts, d in distributions.items()}
            series.append(entry)
    return series
