"""Each dashboard view from a fixture state (portside/ui/views.py): what the page shows, computed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portside.core import metric_distribution
from portside.ui import views

REGION = "us-east-1"
ACCOUNT = "000000000000"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default"
INSTANCE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/default/ci1"
TG_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/web/abc123"
LB_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/front/def456"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/default/web"


def _task(task_id: str, host_port: int, status: str = "RUNNING") -> dict[str, Any]:
    return {
        "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/{task_id}",
        "clusterArn": CLUSTER_ARN,
        "containerInstanceArn": INSTANCE_ARN,
        "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3",
        "lastStatus": status,
        "desiredStatus": "RUNNING",
        "healthStatus": "UNKNOWN",
        "group": "service:web",
        "containers": [{"name": "web", "networkBindings": [{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"}]}],
        "loadBalancerTargets": [{"targetGroupArn": TG_ARN, "id": "i-host1", "port": host_port}],
    }


def fixture_state() -> dict[str, Any]:
    return {
        "region": REGION,
        "now": 1_000_000.0,
        "clusters": [{
            "cluster": {"clusterName": "default", "clusterArn": CLUSTER_ARN, "status": "ACTIVE"},
            "instances": [{
                "containerInstanceArn": INSTANCE_ARN,
                "ec2InstanceId": "i-host1",
                "status": "ACTIVE",
                "agentConnected": True,
                "attributes": [{"name": "ecs.availability-zone", "value": "us-east-1a"}],
                "registeredResources": [
                    {"name": "CPU", "integerValue": 2048}, {"name": "MEMORY", "integerValue": 4000},
                    {"name": "PORTS", "stringSetValue": ["22", "7070"]},
                ],
                "remainingResources": [{"name": "CPU", "integerValue": 1792}, {"name": "MEMORY", "integerValue": 3744}],
                "runningTasksCount": 1,
                "pendingTasksCount": 1,
            }],
            "services": [{
                "serviceName": "web",
                "serviceArn": SERVICE_ARN,
                "status": "ACTIVE",
                "desiredCount": 3,
                "runningCount": 1,
                "pendingCount": 1,
                "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3",
                "deployments": [{
                    "id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "rolloutStateReason": "started",
                    "taskDefinition": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3",
                    "desiredCount": 3, "runningCount": 1, "pendingCount": 1, "failedTasks": 0,
                }],
                "events": [{"createdAt": 100 + i, "message": f"event {i}"} for i in range(8)],
            }],
            "tasks": [_task("t1", 49153), _task("t2", 49154, status="PENDING")],
        }],
        "loadBalancers": [{
            "loadBalancer": {"LoadBalancerName": "front", "LoadBalancerArn": LB_ARN, "DNSName": "front.example", "State": {"Code": "active"}},
            "listeners": [{
                "listener": {"ListenerArn": LB_ARN.replace("loadbalancer", "listener") + "/l1", "Port": 8080, "Protocol": "HTTP"},
                "rules": [
                    {"Priority": "10", "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
                     "Actions": [{"Type": "forward", "TargetGroupArn": TG_ARN}]},
                    {"Priority": "default", "Conditions": [], "Actions": [{"Type": "fixed-response"}]},
                ],
            }],
        }],
        "targetGroups": [{
            "targetGroup": {"TargetGroupName": "web", "TargetGroupArn": TG_ARN, "Protocol": "HTTP", "Port": 80},
            "health": [
                {"Target": {"Id": "i-host1", "Port": 49153}, "TargetHealth": {"State": "healthy"}},
                {"Target": {"Id": "i-host1", "Port": 49154}, "TargetHealth": {
                    "State": "initial", "Reason": "Elb.InitialHealthChecking", "Description": "Initial health checks in progress"}},
            ],
        }],
        "scalingActivities": [{
            "ResourceId": "service/default/web", "StatusCode": "Successful", "Description": "Setting desired count to 3.",
            "Cause": "monitor alarm high", "StatusMessage": "", "StartTime": 999_000.0,
        }],
        "metrics": [
            {"namespace": "AWS/ECS", "metric": "CPUUtilization", "dimensions": {"ClusterName": "default", "ServiceName": "web"},
             "points": [[999_900, 2, 50.0, 20.0, 30.0], [999_960, 1, 40.0, 40.0, 40.0]]},
            {"namespace": "Portside/ECS", "metric": "DesiredTaskCount", "dimensions": {"ClusterName": "default", "ServiceName": "web"},
             "points": [[999_960, 1, 3.0, 3.0, 3.0]]},
            {"namespace": "Portside/ECS", "metric": "CPUUtilization", "dimensions": {"ClusterName": "default", "ContainerInstanceId": "ci1"},
             "points": [[999_960, 4, 100.0, 10.0, 40.0]]},
            {"namespace": "AWS/ApplicationELB", "metric": "RequestCount",
             "dimensions": {"TargetGroup": "targetgroup/web/abc123", "LoadBalancer": "app/front/def456"},
             "points": [[999_900, 10, 120.0, 1.0, 30.0], [999_960, 10, 600.0, 1.0, 90.0]]},
            {"namespace": "AWS/ApplicationELB", "metric": "TargetResponseTime",
             "dimensions": {"TargetGroup": "targetgroup/web/abc123", "LoadBalancer": "app/front/def456"},
             "points": [[999_960, 600, 6.0, 0.001, 0.25, 60]],
             # 590 responses of 1 ms and 10 of 200 ms: the average hides the slow ones, p99 does not
             "distributions": {"999960": {str(k): v for k, v in metric_distribution.distribution_of(
                 [0.001, 0.2], [590, 10]).items()}}},
        ],
        "alarms": [{
            "AlarmName": "web-cpu-high", "StateValue": "ALARM", "StateReason": "Threshold Crossed: 3 datapoints",
            "Namespace": "AWS/ECS", "MetricName": "CPUUtilization", "Statistic": "Average",
            "Dimensions": [{"Name": "ClusterName", "Value": "default"}, {"Name": "ServiceName", "Value": "web"}],
            "ComparisonOperator": "GreaterThanThreshold", "Threshold": 75.0, "StateUpdatedTimestamp": 999_500.0,
        }],
    }


def test_instance_view_shows_zone_agent_resources_and_ports() -> None:
    state = views.build_state(fixture_state())
    [cluster] = state["clusters"]
    [instance] = cluster["instances"]
    assert instance["zone"] == "us-east-1a"
    assert instance["agentConnected"] is True
    assert instance["host"] == "i-host1"
    assert instance["cpu"] == {"used": 256, "registered": 2048}
    assert instance["memory"] == {"used": 256, "registered": 4000}
    assert instance["portsInUse"] == 2 and instance["hostPorts"] == [49153, 49154]
    assert instance["reservedPorts"] == 2
    [cpu_chart, memory_chart] = cluster["charts"]
    assert cpu_chart["title"] == "CPU per host (%)"
    assert cpu_chart["lines"] == [{"label": "i-host1", "points": [[999_960, 25.0]]}]  # named by its host
    assert memory_chart["lines"] == []


def test_service_view_counts_deployments_newest_events_and_charts() -> None:
    [service] = views.build_state(fixture_state())["services"]
    assert (service["desired"], service["running"], service["pending"]) == (3, 1, 1)
    assert service["taskDefinition"] == "web:3"
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert [e["message"] for e in service["events"]] == ["event 7", "event 6", "event 5", "event 4", "event 3"]
    usage, counts = service["charts"]
    assert usage["lines"] == [{"label": "CPU", "points": [[999_900, 25.0], [999_960, 40.0]]}]
    assert counts["lines"] == [{"label": "desired", "points": [[999_960, 3.0]]}]


def test_task_view_maps_host_port_to_container_port_with_its_target_health() -> None:
    tasks = views.build_state(fixture_state())["tasks"]
    by_id = {t["id"]: t for t in tasks}
    healthy, warming = by_id["t1"], by_id["t2"]
    assert healthy["host"] == "i-host1" and healthy["service"] == "web"
    assert healthy["ports"] == [{
        "container": "web", "hostPort": 49153, "containerPort": 8080, "protocol": "tcp",
        "target": {"targetGroup": "web", "state": "healthy", "reason": "", "description": ""},
    }]
    assert warming["lastStatus"] == "PENDING"
    assert warming["ports"][0]["target"]["state"] == "initial"
    assert warming["ports"][0]["target"]["reason"] == "Elb.InitialHealthChecking"


def test_task_without_registered_targets_shows_no_health() -> None:
    raw = fixture_state()
    raw["clusters"][0]["tasks"][0]["loadBalancerTargets"] = []
    [task] = [t for t in views.build_state(raw)["tasks"] if t["id"] == "t1"]
    assert task["ports"][0]["target"] is None


def test_load_balancer_view_lists_listeners_and_rules() -> None:
    [lb] = views.build_state(fixture_state())["loadBalancers"]
    assert lb["name"] == "front" and lb["state"] == "active"
    [listener] = lb["listeners"]
    assert listener["port"] == 8080
    assert listener["rules"] == [
        {"priority": "10", "conditions": ["path-pattern = /api/*"], "actions": ["web"]},
        {"priority": "default", "conditions": ["(default)"], "actions": ["fixed-response"]},
    ]


def test_target_group_view_has_per_target_health_request_rate_and_latency() -> None:
    [tg] = views.build_state(fixture_state())["targetGroups"]
    assert (tg["healthy"], tg["total"]) == (1, 2)
    assert tg["requestRate"] == 10.0  # 600 requests in the last minute's bucket
    assert tg["targets"][1] == {
        "id": "i-host1", "port": 49154, "state": "initial",
        "reason": "Elb.InitialHealthChecking", "description": "Initial health checks in progress",
    }
    rate, latency = tg["charts"]
    assert rate["lines"][0]["points"] == [[999_900, 2.0], [999_960, 10.0]]
    p99, average = latency["lines"]
    assert p99["label"] == "p99" and p99["points"][0][0] == 999_960
    assert p99["points"][0][1] == pytest.approx(0.2, rel=0.02)  # within the distribution's 2 % buckets
    assert average == {"label": "average", "points": [[999_960, 0.01]]}


def test_requests_per_second_follow_the_bucket_length() -> None:
    raw = fixture_state()
    for series in raw["metrics"]:
        if series["metric"] == "RequestCount":
            series["points"] = [[999_999, 1, 7.0, 7.0, 7.0, 1]]  # a high-resolution (1 s) bucket
    [tg] = views.build_state(raw)["targetGroups"]
    assert tg["requestRate"] == 7.0


def test_target_group_without_metrics_has_no_rate() -> None:
    raw = fixture_state()
    raw["metrics"] = []
    [tg] = views.build_state(raw)["targetGroups"]
    assert tg["requestRate"] is None
    assert all(chart["lines"] == [] for chart in tg["charts"])


def test_scaling_activities_and_alarms() -> None:
    state = views.build_state(fixture_state())
    assert state["scalingActivities"] == [{
        "resource": "service/default/web", "status": "Successful", "description": "Setting desired count to 3.",
        "cause": "monitor alarm high", "message": "", "at": 999_000.0,
    }]
    assert state["alarms"] == [{
        "name": "web-cpu-high", "state": "ALARM", "reason": "Threshold Crossed: 3 datapoints",
        "metric": "AWS/ECS CPUUtilization (ClusterName=default, ServiceName=web)",
        "condition": "Average > 75.0", "since": 999_500.0, "actionsEnabled": True,
    }]


def test_state_is_json_ready() -> None:
    state = views.build_state(fixture_state())
    assert json.loads(json.dumps(state)) == state
