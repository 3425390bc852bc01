"""The CloudWatch ``monitoring`` API in each protocol a client may speak, against a real server.

- Smithy RPC v2 CBOR: what boto3 sends by default (``POST /service/.../operation/<Op>``);
- JSON 1.0 (``X-Amz-Target: GraniteServiceVersion20100801.*``): a botocore client whose model says
  ``json``, and the AWS CLI v1 of the venv (1.45 sends JSON 1.0 with ``x-amzn-query-mode``);
- query (``Action=...&Version=2010-08-01``, XML answers), told apart from ELBv2 by the signing
  service of its credential scope: hand-signed forms, and Debian's AWS CLI v2 (2.9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from portside.api import cbor
from tests.support.server import PortsideProcess
from tests.support.signing import send, sign

NAMESPACE = "Portside/Test"


@pytest.fixture(scope="module")
def json_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A botocore data directory whose CloudWatch model speaks only JSON 1.0."""
    loader = botocore.loaders.Loader()
    model = loader.load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocol"] = "json"
    model["metadata"]["protocols"] = ["json"]
    root = tmp_path_factory.mktemp("botocore-data")
    version_dir = root / "cloudwatch" / model["metadata"]["apiVersion"]
    version_dir.mkdir(parents=True)
    (version_dir / "service-2.json").write_text(json.dumps(model))
    return root


def cbor_client(portside: PortsideProcess) -> Any:
    client = portside.client("cloudwatch")
    assert client.meta.service_model.protocol == "smithy-rpc-v2-cbor"
    return client


def json_client(portside: PortsideProcess, json_models: Path) -> Any:
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(json_models))
    client = boto3.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=portside.endpoint, region_name="us-east-1",
        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    assert client.meta.service_model.protocol == "json"
    return client


def cli(portside: PortsideProcess, *args: str, aws: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    command = aws or [sys.executable, "-m", "awscli"]
    return subprocess.run(
        [*command, "cloudwatch", *args, "--endpoint-url", portside.endpoint, "--output", "json"],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_boto3_speaks_cbor_and_round_trips_a_metric(portside: PortsideProcess) -> None:
    cw = cbor_client(portside)
    now = time.time()
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": "CborLatency", "Dimensions": [{"Name": "Service", "Value": "web"}], "Value": 3.0, "Unit": "Seconds"},
        {"MetricName": "CborLatency", "Dimensions": [{"Name": "Service", "Value": "web"}], "Values": [1.0, 5.0],
         "Counts": [2.0, 1.0], "Unit": "Seconds"},
    ])
    stats = cw.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="CborLatency", Dimensions=[{"Name": "Service", "Value": "web"}],
        StartTime=now - 600, EndTime=now + 600, Period=60, Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"],
    )
    assert stats["Label"] == "CborLatency"
    [point] = stats["Datapoints"]
    assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"]) == (4.0, 10.0, 1.0, 5.0)
    assert point["Average"] == 2.5
    assert point["Unit"] == "Seconds"
    assert point["Timestamp"].timestamp() == int(now // 60) * 60
    listed = cw.list_metrics(Namespace=NAMESPACE, MetricName="CborLatency")["Metrics"]
    assert listed == [{"Namespace": NAMESPACE, "MetricName": "CborLatency", "Dimensions": [{"Name": "Service", "Value": "web"}]}]


def test_cbor_errors_carry_cloudwatch_codes(portside: PortsideProcess) -> None:
    cw = cbor_client(portside)
    with pytest.raises(ClientError) as caught:
        cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[{"MetricName": "RequestCount", "Value": 1.0}])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "AWS/" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        cw.get_metric_statistics(Namespace=NAMESPACE, MetricName="X", StartTime=time.time(), EndTime=time.time() - 60,
                                 Period=60, Statistics=["Sum"])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "StartTime" in caught.value.response["Error"]["Message"]


def test_cbor_refuses_bad_bodies_and_unknown_operations(portside: PortsideProcess) -> None:
    path = "/service/GraniteServiceVersion20100801/operation/ListMetrics"
    headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor", "Accept": "application/cbor"}
    # a huge declared array, a truncated map, nesting past the limit, not a map
    for body in (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", b"\xa1\x61", b"\x81" * 200 + b"\x00", b"\x01"):
        status, raw = _raw(portside, body, headers, path)
        assert status == 400
        assert cbor.decode(raw)["__type"] == "SerializationException"
    # without the protocol header
    status, raw = _raw(portside, b"\xa0", {"Content-Type": "application/cbor"}, path)
    assert status == 400 and cbor.decode(raw)["__type"] == "SerializationException"
    # an API whose model has no CBOR protocol (ECS) is not served this way
    ecs_path = "/service/AmazonEC2ContainerServiceV20141113/operation/ListClusters"
    reply = send(portside.endpoint, b"\xa0", sign(portside.endpoint, b"\xa0", headers, service="ecs", path=ecs_path), path=ecs_path)
    assert reply.status == 400
    unknown = "/service/GraniteServiceVersion20100801/operation/DescribeInsightRules"
    reply = send(portside.endpoint, b"", sign(portside.endpoint, b"", headers, service="monitoring", path=unknown), path=unknown)
    assert reply.status == 400
    # signed for another service: refused before anything runs
    reply = send(portside.endpoint, b"", sign(portside.endpoint, b"", headers, service="ecs", path=path), path=path)
    assert reply.status == 403


def _raw(portside: PortsideProcess, body: bytes, headers: dict[str, str], path: str) -> tuple[int, bytes]:
    """The status and raw bytes of the reply (tests.support.signing.send decodes text)."""
    import http.client

    signed = sign(portside.endpoint, body, headers, service="monitoring", path=path)
    connection = http.client.HTTPConnection("127.0.0.1", portside.port, timeout=30)
    try:
        connection.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        for name, value in signed.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_json_1_0_round_trips_a_metric(portside: PortsideProcess, json_models: Path) -> None:
    cw = json_client(portside, json_models)
    now = time.time()
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": "JsonCount", "StatisticValues": {"SampleCount": 3, "Sum": 9, "Minimum": 1, "Maximum": 5},
         "Unit": "Count", "StorageResolution": 1},
    ])
    data = cw.get_metric_data(
        MetricDataQueries=[{"Id": "m1", "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": "JsonCount"}, "Period": 1, "Stat": "Sum"}}],
        StartTime=now - 600, EndTime=now + 600,
    )
    [result] = data["MetricDataResults"]
    assert result["Id"] == "m1" and result["Values"] == [9.0] and result["StatusCode"] == "Complete"
    assert result["Timestamps"][0].timestamp() == int(now)
    with pytest.raises(ClientError) as caught:
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": "JsonCount", "Value": 1.0, "StorageResolution": 30}])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "StorageResolution" in caught.value.response["Error"]["Message"]


def test_aws_cli_v1_round_trips_metrics(portside: PortsideProcess) -> None:
    put = cli(portside, "put-metric-data", "--namespace", NAMESPACE, "--metric-name", "CliGauge",
              "--dimensions", "Host=a", "--value", "7", "--unit", "Count")
    assert put.returncode == 0, put.stderr
    now = int(time.time())
    stats = cli(portside, "get-metric-statistics", "--namespace", NAMESPACE, "--metric-name", "CliGauge",
                "--dimensions", "Name=Host,Value=a", "--start-time", str(now - 600), "--end-time", str(now + 600),
                "--period", "60", "--statistics", "Maximum", "SampleCount")
    assert stats.returncode == 0, stats.stderr
    [point] = json.loads(stats.stdout)["Datapoints"]
    assert point["Maximum"] == 7.0 and point["SampleCount"] == 1.0 and point["Unit"] == "Count"
    listed = cli(portside, "list-metrics", "--namespace", NAMESPACE, "--dimensions", "Name=Host")
    assert listed.returncode == 0, listed.stderr
    assert [m["MetricName"] for m in json.loads(listed.stdout)["Metrics"]] == ["CliGauge"]
    bad = cli(portside, "put-metric-data", "--namespace", "AWS/ECS", "--metric-name", "CPUUtilization", "--value", "1")
    assert bad.returncode != 0 and "InvalidParameterValue" in bad.stderr
    # ELBv2 still answers on the same endpoint in the same protocol
    elb = subprocess.run(
        [sys.executable, "-m", "awscli", "elbv2", "describe-load-balancers", "--endpoint-url", portside.endpoint],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert elb.returncode == 0, elb.stderr


def test_query_requests_signed_for_monitoring_reach_cloudwatch(portside: PortsideProcess) -> None:
    form = "Action=PutMetricData&Version=2010-08-01&Namespace=Portside%2FTest&MetricData.member.1.MetricName=Form" \
           "&MetricData.member.1.Value=2&MetricData.member.1.Dimensions.member.1.Name=Via" \
           "&MetricData.member.1.Dimensions.member.1.Value=query"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    reply = send(portside.endpoint, form.encode(), sign(portside.endpoint, form.encode(), headers, service="monitoring"))
    assert reply.status == 200, reply.body
    assert "<PutMetricDataResponse" in reply.body and "monitoring.amazonaws.com/doc/2010-08-01" in reply.body
    listing = "Action=ListMetrics&Version=2010-08-01&Namespace=Portside%2FTest&MetricName=Form"
    reply = send(portside.endpoint, listing.encode(), sign(portside.endpoint, listing.encode(), headers, service="monitoring"))
    assert reply.status == 200
    assert "<ListMetricsResult><Metrics><member><Namespace>Portside/Test</Namespace><MetricName>Form</MetricName>" in reply.body
    assert "<Name>Via</Name><Value>query</Value>" in reply.body
    bad = "Action=PutMetricData&Version=2010-08-01&Namespace=AWS%2FX&MetricData.member.1.MetricName=F&MetricData.member.1.Value=1"
    reply = send(portside.endpoint, bad.encode(), sign(portside.endpoint, bad.encode(), headers, service="monitoring"))
    assert reply.status == 400
    assert "<Code>InvalidParameterValue</Code>" in reply.body and "<Type>Sender</Type>" in reply.body
    assert "monitoring.amazonaws.com/doc/2010-08-01" in reply.body
    # an ELBv2 action signed for monitoring is not CloudWatch's, and a CloudWatch action signed for ELBv2 not ELBv2's
    elb = "Action=DescribeLoadBalancers&Version=2015-12-01"
    reply = send(portside.endpoint, elb.encode(), sign(portside.endpoint, elb.encode(), headers, service="monitoring"))
    assert reply.status == 400 and "<Code>InvalidAction</Code>" in reply.body
    reply = send(portside.endpoint, listing.encode(), sign(portside.endpoint, listing.encode(), headers, service="elasticloadbalancing"))
    assert reply.status == 400 and "<Code>InvalidAction</Code>" in reply.body
    # signed for a service nothing serves: refused like any bad scope
    reply = send(portside.endpoint, listing.encode(), sign(portside.endpoint, listing.encode(), headers, service="sqs"))
    assert reply.status == 403


AWS_CLI_V2 = Path("/usr/bin/aws")  # Debian's AWS CLI v2 (scripts/setup installs it)


@pytest.mark.skipif(not AWS_CLI_V2.exists(), reason="Debian's AWS CLI v2 is not installed")
def test_aws_cli_v2_puts_and_reads_metrics(portside: PortsideProcess) -> None:
    aws = [str(AWS_CLI_V2)]
    put = cli(portside, "put-metric-data", "--namespace", NAMESPACE, "--metric-name", "V2Gauge",
              "--value", "3", "--storage-resolution", "1", aws=aws)
    assert put.returncode == 0, put.stderr
    now = int(time.time())
    data = cli(portside, "get-metric-data", "--start-time", str(now - 600), "--end-time", str(now + 600),
               "--metric-data-queries", json.dumps([{"Id": "v", "MetricStat": {
                   "Metric": {"Namespace": NAMESPACE, "MetricName": "V2Gauge"}, "Period": 60, "Stat": "Maximum"}}]),
               aws=aws)
    assert data.returncode == 0, data.stderr
    [result] = json.loads(data.stdout)["MetricDataResults"]
    assert result["Values"] == [3.0] and result["StatusCode"] == "Complete"
    listed = cli(portside, "list-metrics", "--namespace", NAMESPACE, "--metric-name", "V2Gauge", aws=aws)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Metrics"] == [{"Namespace": NAMESPACE, "MetricName": "V2Gauge", "Dimensions": []}]
    bad = cli(portside, "get-metric-statistics", "--namespace", NAMESPACE, "--metric-name", "V2Gauge",
              "--start-time", str(now), "--end-time", str(now + 60), "--period", "45", "--statistics", "Sum", aws=aws)
    assert bad.returncode != 0 and "InvalidParameterValue" in bad.stderr and "Period" in bad.stderr
