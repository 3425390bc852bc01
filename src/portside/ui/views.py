"""The dashboard's view state, assembled from the documents ``collect`` read (pure: no I/O, no clock).

``build_state(raw)`` returns one JSON-ready dict the page renders as it is: every number the
page shows is computed here (so a unit test checks it from a fixture), the page only lays it out.
"""

from __future__ import annotations

from typing import Any

from portside.core import metric_distribution

#: How many of a service's events the page shows (newest first).
EVENTS_SHOWN = 5
#: The percentile the latency chart draws.
LATENCY_PERCENTILE = 99.0


def build_state(raw: dict[str, Any]) -> dict[str, Any]:
    health = target_health_index(raw.get("targetGroups", []))
    tg_names = {tg["targetGroup"]["TargetGroupArn"]: tg["targetGroup"]["TargetGroupName"] for tg in raw.get("targetGroups", [])}
    state: dict[str, Any] = {
        "region": raw["region"],
        "generatedAt": raw["now"],
        "clusters": [],
        "services": [],
        "tasks": [],
        "loadBalancers": [load_balancer_view(lb, tg_names) for lb in raw.get("loadBalancers", [])],
        "targetGroups": [target_group_view(tg, raw.get("metrics", [])) for tg in raw.get("targetGroups", [])],
        "scalingActivities": [activity_view(a) for a in raw.get("scalingActivities", [])],
        "alarms": [alarm_view(a) for a in raw.get("alarms", [])],
    }
    for entry in raw.get("clusters", []):
        cluster = entry["cluster"]
        hosts = {i["containerInstanceArn"]: i.get("ec2InstanceId") or _last(i["containerInstanceArn"]) for i in entry["instances"]}
        state["clusters"].append(cluster_view(cluster, entry["instances"], entry["tasks"], raw.get("metrics", [])))
        state["services"].extend(service_view(cluster["clusterName"], s, raw.get("metrics", [])) for s in entry["services"])
        state["tasks"].extend(task_view(cluster["clusterName"], t, hosts, health) for t in entry["tasks"])
    return state


# -- clusters and container instances


def cluster_view(cluster: dict[str, Any], instances: list[dict[str, Any]], tasks: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    name = cluster["clusterName"]
    hosts = {_last(i["containerInstanceArn"]): i.get("ec2InstanceId") or _last(i["containerInstanceArn"]) for i in instances}
    return {
        "name": name,
        "arn": cluster["clusterArn"],
        "status": cluster.get("status", "ACTIVE"),
        "instances": [instance_view(i, tasks) for i in instances],
        "charts": [
            chart(f"{label} per host (%)", "%", [
                (hosts.get(s["dimensions"]["ContainerInstanceId"], s["dimensions"]["ContainerInstanceId"]), average_points(s))
                for s in _series(metrics, "Portside/ECS", metric, ClusterName=name) if "ContainerInstanceId" in s["dimensions"]
            ])
            for metric, label in (("CPUUtilization", "CPU"), ("MemoryUtilization", "Memory"))
        ],
    }


def instance_view(instance: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    arn = instance["containerInstanceArn"]
    registered = {r["name"]: r for r in instance.get("registeredResources", [])}
    remaining = {r["name"]: r for r in instance.get("remainingResources", [])}
    host_ports = sorted({
        b["hostPort"] for t in tasks if t.get("containerInstanceArn") == arn
        for c in t.get("containers", []) for b in c.get("networkBindings", []) if b.get("hostPort")
    })
    attributes = {a["name"]: a.get("value") for a in instance.get("attributes", [])}
    return {
        "arn": arn,
        "id": _last(arn),
        "host": instance.get("ec2InstanceId", ""),
        "zone": attributes.get("ecs.availability-zone", ""),
        "status": instance.get("status", ""),
        "agentConnected": bool(instance.get("agentConnected")),
        "cpu": _used("CPU", registered, remaining),
        "memory": _used("MEMORY", registered, remaining),
        "portsInUse": len(host_ports),
        "hostPorts": host_ports,
        "reservedPorts": len(registered.get("PORTS", {}).get("stringSetValue", [])),
        "runningTasks": instance.get("runningTasksCount", 0),
        "pendingTasks": instance.get("pendingTasksCount", 0),
    }


def _used(name: str, registered: dict[str, Any], remaining: dict[str, Any]) -> dict[str, int]:
    total = int(registered.get(name, {}).get("integerValue", 0))
    left = int(remaining.get(name, {}).get("integerValue", total))
    return {"used": total - left, "registered": total}


# -- services and tasks


def service_view(cluster: str, service: dict[str, Any], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    name = service["serviceName"]
    events = sorted(service.get("events", []), key=lambda e: e.get("createdAt", 0), reverse=True)[:EVENTS_SHOWN]
    dims = {"ClusterName": cluster, "ServiceName": name}
    return {
        "cluster": cluster,
        "name": name,
        "arn": service["serviceArn"],
        "status": service.get("status", ""),
        "desired": service.get("desiredCount", 0),
        "running": service.get("runningCount", 0),
        "pending": service.get("pendingCount", 0),
        "taskDefinition": _last(service.get("taskDefinition", "")),
        "deployments": [
            {
                "id": d["id"],
                "status": d.get("status", ""),
                "rolloutState": d.get("rolloutState", ""),
                "rolloutStateReason": d.get("rolloutStateReason", ""),
                "taskDefinition": _last(d.get("taskDefinition", "")),
                "desired": d.get("desiredCount", 0),
                "running": d.get("runningCount", 0),
                "pending": d.get("pendingCount", 0),
                "failed": d.get("failedTasks", 0),
            }
            for d in service.get("deployments", [])
        ],
        "events": [{"at": e.get("createdAt", 0), "message": e.get("message", "")} for e in events],
        "charts": [
            chart("CPU and memory (%)", "%", [
                (label, average_points(s))
                for metric, label in (("CPUUtilization", "CPU"), ("MemoryUtilization", "memory"))
                for s in _series(metrics, "AWS/ECS", metric, **dims)
            ]),
            chart("Desired vs running tasks", "tasks", [
                (label, average_points(s))
                for metric, label in (("DesiredTaskCount", "desired"), ("RunningTaskCount", "running"))
                for s in _series(metrics, "Portside/ECS", metric, **dims)
            ]),
        ],
    }


def task_view(cluster: str, task: dict[str, Any], hosts: dict[str, str], health: dict[tuple[str, str, int], dict[str, Any]]) -> dict[str, Any]:
    instance = task.get("containerInstanceArn") or ""
    host = hosts.get(instance, "")
    ports = []
    registered = task.get("loadBalancerTargets", [])
    for container in task.get("containers", []):
        for binding in container.get("networkBindings", []):
            host_port = binding.get("hostPort")
            target = next(
                (health[key] for t in registered if t["port"] == host_port
                 and (key := (t["targetGroupArn"], t["id"], t["port"])) in health),
                None,
            )
            ports.append({
                "container": container.get("name", ""),
                "hostPort": host_port,
                "containerPort": binding.get("containerPort"),
                "protocol": binding.get("protocol", "tcp"),
                "target": target,
            })
    group = task.get("group", "")
    return {
        "cluster": cluster,
        "arn": task["taskArn"],
        "id": _last(task["taskArn"]),
        "service": group[len("service:"):] if group.startswith("service:") else "",
        "host": host,
        "containerInstanceArn": instance,
        "lastStatus": task.get("lastStatus", ""),
        "desiredStatus": task.get("desiredStatus", ""),
        "health": task.get("healthStatus", "UNKNOWN"),
        "taskDefinition": _last(task.get("taskDefinitionArn", "")),
        "ports": ports,
    }


def target_health_index(groups: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(target group ARN, target id, port) -> the target's health, as DescribeTargetHealth tells it."""
    index: dict[tuple[str, str, int], dict[str, Any]] = {}
    for tg in groups:
        for description in tg["health"]:
            key = (tg["targetGroup"]["TargetGroupArn"], description["Target"]["Id"], int(description["Target"]["Port"]))
            index.setdefault(key, {
                "targetGroup": tg["targetGroup"]["TargetGroupName"],
                "state": description["TargetHealth"]["State"],
                "reason": description["TargetHealth"].get("Reason", ""),
                "description": description["TargetHealth"].get("Description", ""),
            })
    return index


# -- load balancers


def load_balancer_view(entry: dict[str, Any], tg_names: dict[str, str]) -> dict[str, Any]:
    lb = entry["loadBalancer"]
    return {
        "name": lb["LoadBalancerName"],
        "arn": lb["LoadBalancerArn"],
        "dnsName": lb.get("DNSName", ""),
        "state": lb.get("State", {}).get("Code", ""),
        "listeners": [
            {
                "arn": item["listener"]["ListenerArn"],
                "port": item["listener"].get("Port"),
                "protocol": item["listener"].get("Protocol", ""),
                "rules": [rule_view(rule, tg_names) for rule in item["rules"]],
            }
            for item in entry["listeners"]
        ],
    }


def rule_view(rule: dict[str, Any], tg_names: dict[str, str]) -> dict[str, Any]:
    conditions = []
    for condition in rule.get("Conditions", []):
        values = condition.get("Values") or next(
            (v.get("Values", []) for k, v in condition.items() if k.endswith("Config") and isinstance(v, dict)), []
        )
        conditions.append(f"{condition.get('Field', '')} = {', '.join(str(v) for v in values)}")
    groups: list[str] = []
    for action in rule.get("Actions", []):
        arns = [action["TargetGroupArn"]] if action.get("TargetGroupArn") else [
            t["TargetGroupArn"] for t in action.get("ForwardConfig", {}).get("TargetGroups", [])
        ]
        groups.extend(tg_names.get(arn, _last(arn)) for arn in arns)
        if not arns:
            groups.append(action.get("Type", ""))
    return {
        "priority": rule.get("Priority", ""),
        "conditions": conditions or ["(default)"],
        "actions": list(dict.fromkeys(groups)),
    }


def target_group_view(entry: dict[str, Any], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    tg = entry["targetGroup"]
    suffix = tg["TargetGroupArn"].split(":", 5)[-1]
    requests = [s for s in metrics if s["namespace"] == "AWS/ApplicationELB" and s["metric"] == "RequestCount" and s["dimensions"].get("TargetGroup") == suffix]
    latency = [s for s in metrics if s["namespace"] == "AWS/ApplicationELB" and s["metric"] == "TargetResponseTime" and s["dimensions"].get("TargetGroup") == suffix]
    rate_points = sum_points(requests, per_second=True)
    states = [d["TargetHealth"]["State"] for d in entry["health"]]
    return {
        "name": tg["TargetGroupName"],
        "arn": tg["TargetGroupArn"],
        "protocol": tg.get("Protocol", ""),
        "port": tg.get("Port"),
        "healthy": states.count("healthy"),
        "total": len(states),
        "requestRate": rate_points[-1][1] if rate_points else None,
        "targets": [
            {
                "id": d["Target"]["Id"],
                "port": d["Target"].get("Port"),
                "state": d["TargetHealth"]["State"],
                "reason": d["TargetHealth"].get("Reason", ""),
                "description": d["TargetHealth"].get("Description", ""),
            }
            for d in entry["health"]
        ],
        "charts": [
            chart("Requests per second", "req/s", [("requests/s", rate_points)]),
            chart("Latency (s)", "s", [("p99", percentile_points(latency, LATENCY_PERCENTILE)), ("average", mean_points(latency))]),
        ],
    }


def alarm_view(alarm: dict[str, Any]) -> dict[str, Any]:
    """A CloudWatch metric alarm as DescribeAlarms shows it: its state, why, and what it watches."""
    dims = ", ".join(f"{d['Name']}={d['Value']}" for d in alarm.get("Dimensions", []))
    return {
        "name": alarm.get("AlarmName", ""),
        "state": alarm.get("StateValue", ""),
        "reason": alarm.get("StateReason", ""),
        "metric": f"{alarm.get('Namespace', '')} {alarm.get('MetricName', '')}".strip() + (f" ({dims})" if dims else ""),
        "condition": f"{alarm.get('Statistic') or alarm.get('ExtendedStatistic') or ''} "
                     f"{_COMPARISONS.get(alarm.get('ComparisonOperator', ''), alarm.get('ComparisonOperator', ''))} "
                     f"{alarm.get('Threshold', '')}".strip(),
        "since": alarm.get("StateUpdatedTimestamp", 0),
        "actionsEnabled": bool(alarm.get("ActionsEnabled", True)),
    }


_COMPARISONS = {
    "GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">", "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def activity_view(activity: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": activity.get("ResourceId", ""),
        "status": activity.get("StatusCode", ""),
        "description": activity.get("Description", ""),
        "cause": activity.get("Cause", ""),
        "message": activity.get("StatusMessage", ""),
        "at": activity.get("StartTime", 0),
    }


# -- chart series


def chart(title: str, unit: str, lines: list[tuple[str, list[list[float]]]]) -> dict[str, Any]:
    """A chart: ``lines`` as (label, [[ts, value], ...]); lines without points are left out."""
    return {"title": title, "unit": unit, "lines": [{"label": label, "points": pts} for label, pts in lines if pts]}


def average_points(series: dict[str, Any]) -> list[list[float]]:
    return [[p[0], round(p[2] / p[1], 3)] for p in series["points"] if p[1]]


def percentile_points(series_list: list[dict[str, Any]], p: float) -> list[list[float]]:
    """The ``p``-th percentile of each time bucket, from the value-bucket counts stored with it
    (merged over the series); buckets without a distribution are left out."""
    merged: dict[int, tuple[dict[int, float], float, float]] = {}
    for series in series_list:
        distributions = series.get("distributions", {})
        for ts, count, _total, lo, hi, *_ in series["points"]:
            counts = distributions.get(str(ts))
            if not count or not counts:
                continue
            into, low, high = merged.get(ts, ({}, lo, hi))
            metric_distribution.merge(into, {int(k): v for k, v in counts.items()})
            merged[ts] = (into, min(low, lo), max(high, hi))
    out = []
    for ts in sorted(merged):
        counts, low, high = merged[ts]
        value = metric_distribution.percentile(counts, p, low, high)
        if value is not None:
            out.append([ts, round(value, 4)])
    return out


def mean_points(series_list: list[dict[str, Any]]) -> list[list[float]]:
    totals: dict[int, list[float]] = {}
    for series in series_list:
        for ts, count, total, *_ in series["points"]:
            entry = totals.setdefault(ts, [0.0, 0.0])
            entry[0] += count
            entry[1] += total
    return [[ts, round(totals[ts][1] / totals[ts][0], 4)] for ts in sorted(totals) if totals[ts][0]]


def sum_points(series_list: list[dict[str, Any]], per_second: bool = False) -> list[list[float]]:
    """Sum of each bucket over the series (per second of the bucket's length when asked)."""
    merged: dict[int, float] = {}
    length: dict[int, float] = {}
    for series in series_list:
        for ts, _count, total, _lo, _hi, *rest in series["points"]:
            merged[ts] = merged.get(ts, 0.0) + total
            length[ts] = float(rest[0]) if rest else 60.0
    return [[ts, round(merged[ts] / (length[ts] if per_second else 1.0), 3)] for ts in sorted(merged)]


def _series(metrics: list[dict[str, Any]], namespace: str, metric: str, **dims: str) -> list[dict[str, Any]]:
    return [
        s for s in metrics
        if s["namespace"] == namespace and s["metric"] == metric and all(s["dimensions"].get(k) == v for k, v in dims.items())
    ]


def _last(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
