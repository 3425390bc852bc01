"""Traffic through a real listener to a real service shows up in CloudWatch's AWS/ApplicationELB metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker

NS = "AWS/ApplicationELB"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def _sum(cw: Any, name: str, dims: dict[str, str], statistic: str = "Sum") -> float:
    now = time.time()
    points = cw.get_metric_statistics(
        Namespace=NS, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - 900, EndTime=now + 60, Period=60, Statistics=[statistic],
    )["Datapoints"]
    values = [p[statistic] for p in points]
    if statistic == "Maximum":
        return max(values, default=0.0)
    return sum(values)


def test_requests_through_a_listener_are_recorded_with_aws_dimensions(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    server = PortsideProcess(tmp_path / "state", "--min-health-check-interval", "1", "--scaling-period", "1",
                             "--stop-timeout", "3")
    server.start()
    try:
        ecs = server.client()
        elb = server.client("elbv2", config=Config(parameter_validation=False))
        cw = server.client("cloudwatch")
        lb = elb.create_load_balancer(Name="watched", Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
        tg = elb.create_target_group(
            Name="watched", Protocol="HTTP", Port=80, VpcId="v", TargetType="instance", HealthCheckIntervalSeconds=2,
            HealthCheckTimeoutSeconds=1, HealthCheckPath="/cgi-bin/whoami",
        )["TargetGroups"][0]
        empty = elb.create_target_group(Name="empty", Protocol="HTTP", Port=80, VpcId="v", TargetType="instance")["TargetGroups"][0]
        port = free_port()
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        )["Listeners"][0]
        elb.create_rule(
            ListenerArn=listener["ListenerArn"], Priority=1,
            Conditions=[{"Field": "path-pattern", "Values": ["/empty/*"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": empty["TargetGroupArn"]}],
        )
        td = ecs.register_task_definition(
            family="watched",
            containerDefinitions=[{"name": "web", "image": busybox_image, "memory": 32, "stopTimeout": 3,
                                   "portMappings": [{"containerPort": 80}]}],
        )["taskDefinition"]
        ecs.create_service(
            serviceName="watched", taskDefinition=td["taskDefinitionArn"], desiredCount=1,
            loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}],
        )
        ecs.get_waiter("services_stable").wait(services=["watched"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        base = f"http://127.0.0.1:{port}"
        eventually(lambda: _get(base + "/cgi-bin/whoami") == 200, what="the service answers through the listener")
        lb_dim = lb["LoadBalancerArn"].split(":loadbalancer/")[1]
        tg_dim = tg["TargetGroupArn"].split(":")[-1]
        lb_dims = {"LoadBalancer": lb_dim}
        tg_dims = {"TargetGroup": tg_dim, "LoadBalancer": lb_dim}
        # what came before (the health of the first request) is counted too: measure from a settled total
        settled = eventually(lambda: _stable(lambda: _sum(cw, "RequestCount", tg_dims)), timeout=60, what="settled count")
        statuses = [_get(base + "/cgi-bin/whoami") for _ in range(12)] + [_get(base + "/no-such-page") for _ in range(3)]
        assert statuses == [200] * 12 + [404] * 3
        elb_errors = [_get(base + "/empty/x") for _ in range(2)]
        assert elb_errors == [503, 503]

        eventually(lambda: _sum(cw, "RequestCount", tg_dims) == settled[0] + 15, timeout=60, what="RequestCount per target group")
        # a response is counted when it starts and timed when it ends: maybe a period after its request
        eventually(lambda: _sum(cw, "HTTPCode_Target_4XX_Count", tg_dims) == 3, timeout=30, what="HTTPCode_Target_4XX_Count")
        eventually(lambda: _sum(cw, "HTTPCode_ELB_5XX_Count", lb_dims) == 2, timeout=30, what="HTTPCode_ELB_5XX_Count")
        eventually(lambda: _sum(cw, "TargetResponseTime", tg_dims, "SampleCount") >= 15, timeout=30, what="response times")
        assert _sum(cw, "HTTPCode_Target_2XX_Count", lb_dims) >= 12
        assert _sum(cw, "HTTPCode_Target_4XX_Count", lb_dims) == 3
        assert _sum(cw, "RequestCount", lb_dims) >= settled[0] + 17
        assert _sum(cw, "HealthyHostCount", tg_dims, "Maximum") == 1
        # recorded every period (a loaded machine may see the copy miss a health check: no exact value)
        assert _sum(cw, "UnHealthyHostCount", tg_dims, "SampleCount") >= 1
        now = time.time()
        data = cw.get_metric_data(
            MetricDataQueries=[
                {"Id": "latency", "MetricStat": {"Metric": {"Namespace": NS, "MetricName": "TargetResponseTime",
                 "Dimensions": [{"Name": "TargetGroup", "Value": tg_dim}, {"Name": "LoadBalancer", "Value": lb_dim}]},
                 "Period": 60, "Stat": "Maximum"}},
                {"Id": "perTarget", "MetricStat": {"Metric": {"Namespace": NS, "MetricName": "RequestCountPerTarget",
                 "Dimensions": [{"Name": "TargetGroup", "Value": tg_dim}, {"Name": "LoadBalancer", "Value": lb_dim}]},
                 "Period": 60, "Stat": "Sum"}},
            ],
            StartTime=now - 900, EndTime=now + 60,
        )["MetricDataResults"]
        latency, per_target = data
        assert latency["Id"] == "latency" and latency["Values"] and all(0 < v < 10 for v in latency["Values"])
        assert sum(per_target["Values"]) >= 15  # one healthy target: every request is its share
        p99 = cw.get_metric_statistics(
            Namespace=NS, MetricName="TargetResponseTime",
            Dimensions=[{"Name": "TargetGroup", "Value": tg_dim}, {"Name": "LoadBalancer", "Value": lb_dim}],
            StartTime=now - 900, EndTime=now + 60, Period=60, ExtendedStatistics=["p99", "p50"],
        )["Datapoints"]
        assert p99 and all(0 < p["ExtendedStatistics"]["p50"] <= p["ExtendedStatistics"]["p99"] < 10 for p in p99)
        names = {(m["MetricName"], tuple(sorted(d["Name"] for d in m["Dimensions"])))
                 for m in cw.list_metrics(Namespace=NS)["Metrics"]}
        assert ("RequestCount", ("LoadBalancer",)) in names
        assert ("RequestCount", ("LoadBalancer", "TargetGroup")) in names
        assert ("ActiveConnectionCount", ("LoadBalancer",)) in names
        assert ("HealthyHostCount", ("LoadBalancer", "TargetGroup")) in names
        # the AWS CLI reads the same numbers
        out = subprocess.run(
            [sys.executable, "-m", "awscli", "cloudwatch", "get-metric-statistics", "--namespace", NS,
             "--metric-name", "HTTPCode_ELB_5XX_Count", "--dimensions", f"Name=LoadBalancer,Value={lb_dim}",
             "--start-time", str(int(now - 900)), "--end-time", str(int(now + 60)), "--period", "60",
             "--statistics", "Sum", "--endpoint-url", server.endpoint, "--output", "json"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1"},
        )
        assert out.returncode == 0, out.stderr
        assert sum(p["Sum"] for p in json.loads(out.stdout)["Datapoints"]) == 2
    finally:
        try:
            server.client().delete_service(service="watched", force=True)
        except Exception:
            pass
        server.stop()
        remove_server_containers(docker_client, server)


def _stable(read: Any) -> tuple[float] | None:
    """The value ``read()`` gives twice, three metric periods apart (None while it still moves)."""
    first = read()
    time.sleep(3.5)
    return (first,) if read() == first else None
