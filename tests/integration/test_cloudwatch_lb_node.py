"""Requests served by a `portside lb` node count in CloudWatch: the node reports them
(``PortsideAgent.ReportMetrics``) and the control plane checks what it is sent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config

from portside.control import metric_reports
from portside.errors import InvalidParameterException
from tests.integration.conftest import remove_server_containers
from tests.integration.test_services import Stack, create_service, task_definition
from tests.support.server import PortsideProcess
from tests.support.stores import StoreFactory
from tests.support.waiting import eventually

NODE_ADDRESS = "127.0.0.2"
KEY, SECRET = "AKIDCWSERVER", "cw-server-secret"
NODE_KEY, NODE_SECRET = "AKIDCWNODE", "cw-node-secret"
NS = "AWS/ApplicationELB"


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        f"[lb]\naws_access_key_id = {NODE_KEY}\naws_secret_access_key = {NODE_SECRET}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def server(tmp_path: Path, credentials: Path, docker_client: Any) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path / "server", "--credentials", str(credentials), "--auth", "always",
                              "--min-health-check-interval", "1", "--stop-timeout", "3", "--scaling-period", "1")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)


@pytest.fixture
def node(server: PortsideProcess, credentials: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    state = tmp_path / "node"
    state.mkdir()
    with open(tmp_path / "node.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portside.cli.main", "lb", "--server", server.endpoint, "--credentials", str(credentials),
             "--profile", "lb", "--bind-address", NODE_ADDRESS, "--state-dir", str(state), "--metrics-period", "1"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.docker
def test_requests_through_a_node_show_up_in_the_load_balancers_metrics(
    server: PortsideProcess, node: Any, busybox_image: str
) -> None:
    ecs = server.client(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    elb = server.client("elbv2", aws_access_key_id=KEY, aws_secret_access_key=SECRET, config=Config(parameter_validation=False))
    cw = server.client("cloudwatch", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    stack = Stack(elb, "noded")
    create_service(ecs, "noded", task_definition(ecs, busybox_image, "noded"), stack, 1)
    node_url = f"http://{NODE_ADDRESS}:{stack.port}/cgi-bin/whoami"

    def answers() -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(node_url, timeout=3) as reply:
                reply.read()  # the whole response: an exchange the client leaves early has no response time
                return reply.status == 200
        except OSError:
            return False

    eventually(answers, 90, 0.5, "the node serving the copy")
    lb_dim = stack.lb_arn.split(":loadbalancer/")[1]
    tg_dim = stack.tg_arn.split(":")[-1]

    def total(dims: dict[str, str]) -> float:
        now = time.time()
        points = cw.get_metric_statistics(
            Namespace=NS, MetricName="RequestCount", Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=now - 900, EndTime=now + 60, Period=60, Statistics=["Sum"])["Datapoints"]
        return sum(p["Sum"] for p in points)

    lb_dims, tg_dims = {"LoadBalancer": lb_dim}, {"TargetGroup": tg_dim, "LoadBalancer": lb_dim}

    def settled() -> tuple[float, float] | None:
        first = (total(lb_dims), total(tg_dims))
        time.sleep(2.5)
        return first if (total(lb_dims), total(tg_dims)) == first else None

    # the requests that found the node serving are counted too: measure from settled totals
    lb_before, tg_before = eventually(settled, 60, 0.5, "settled counts")
    assert lb_before >= 1
    for _ in range(10):
        assert answers()
    eventually(lambda: total(lb_dims) == lb_before + 10, 60, 0.5, "the node's requests counted")
    eventually(lambda: total(tg_dims) == tg_before + 10, 30, 0.5, "the node's requests counted for the group")

    def response_times() -> list[dict[str, Any]]:
        now = time.time()
        return cw.get_metric_statistics(
            Namespace=NS, MetricName="TargetResponseTime", Dimensions=[{"Name": k, "Value": v} for k, v in tg_dims.items()],
            StartTime=now - 900, EndTime=now + 60, Period=60, Statistics=["SampleCount"])["Datapoints"]

    # a response's time is measured when it ends, maybe a report after its count
    eventually(lambda: sum(p["SampleCount"] for p in response_times()) >= 11, 30, 0.5, "the response times reported")
    now = time.time()
    p99 = cw.get_metric_statistics(
        Namespace=NS, MetricName="TargetResponseTime", Dimensions=[{"Name": k, "Value": v} for k, v in tg_dims.items()],
        StartTime=now - 900, EndTime=now + 60, Period=60, ExtendedStatistics=["p99"])["Datapoints"]
    assert p99 and all(0 < p["ExtendedStatistics"]["p99"] < 10 for p in p99)


# -- what the control plane accepts from a node


LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/0123456789abcdef"


@pytest.fixture
def plane(store_at: StoreFactory) -> Any:
    store = store_at()
    with store.transaction():
        store.add_load_balancer("us-east-1", {"LoadBalancerArn": LB_ARN, "LoadBalancerName": "web"})
    return SimpleNamespace(store=store, clock=lambda: 1_780_000_000.0)


def _item(**change: Any) -> dict[str, Any]:
    return {"metricName": "RequestCount", "dimensions": {"LoadBalancer": "app/web/0123456789abcdef"}, "unit": "Count",
            "sampleCount": 1, "sum": 5, "minimum": 5, "maximum": 5, **change}


def test_a_node_report_is_recorded(plane: Any) -> None:
    metric_reports.report_metrics(plane, "us-east-1", {"periodSeconds": 60, "measurements": [
        _item(), _item(metricName="TargetResponseTime", unit="Seconds", sum=0.2, minimum=0.2, maximum=0.2,
                       distribution={"-162": 1})]})
    [point] = plane.store.metric_datapoints("us-east-1", NS, "RequestCount", {"LoadBalancer": "app/web/0123456789abcdef"}, 0, 2e9)
    assert point.stats.sum == 5 and point.resolution == 60
    assert plane.store.metric_distributions("us-east-1", NS, "TargetResponseTime", {"LoadBalancer": "app/web/0123456789abcdef"}, 0, 2e9)


@pytest.mark.parametrize(("params", "says"), [
    ({"periodSeconds": 0, "measurements": []}, "periodSeconds"),
    ({"periodSeconds": 60, "ageSeconds": -1, "measurements": []}, "ageSeconds"),
    ({"periodSeconds": 60, "measurements": "x"}, "measurements"),
    ({"periodSeconds": 60, "measurements": [_item()] * 5001}, "measurements"),
    ({"periodSeconds": 60, "measurements": [_item(metricName="CPUUtilization")]}, "metricName"),
    ({"periodSeconds": 60, "measurements": [_item(metricName="HealthyHostCount")]}, "metricName"),
    ({"periodSeconds": 60, "measurements": [_item(unit="Seconds")]}, "unit"),
    ({"periodSeconds": 60, "measurements": [_item(dimensions={"LoadBalancer": "app/other/1"})]}, "no load balancer"),
    ({"periodSeconds": 60, "measurements": [_item(dimensions={"InstanceId": "i-1"})]}, "dimensions"),
    ({"periodSeconds": 60, "measurements": [_item(dimensions={"LoadBalancer": "app/web/0123456789abcdef", "TargetGroup": "x"})]}, "TargetGroup"),
    ({"periodSeconds": 60, "measurements": [_item(sum=float("inf"))]}, "finite"),
    ({"periodSeconds": 60, "measurements": [_item(minimum=9)]}, "minimum"),
    ({"periodSeconds": 60, "measurements": [_item(distribution={"x": 1})]}, "distribution"),
    ({"periodSeconds": 60, "measurements": [_item(distribution={"2": -1})]}, "distribution"),
    ({"periodSeconds": 60, "measurements": [_item(distribution={str(i): 1 for i in range(4001)})]}, "distribution"),
])
def test_a_bad_report_is_refused_naming_the_field_and_nothing_is_written(plane: Any, params: dict[str, Any], says: str) -> None:
    params["measurements"] = [_item(), *params["measurements"]] if isinstance(params["measurements"], list) else params["measurements"]
    with pytest.raises(InvalidParameterException, match=says):
        metric_reports.report_metrics(plane, "us-east-1", params)
    assert plane.store.metric_keys("us-east-1") == []
