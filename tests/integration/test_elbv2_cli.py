"""ELBv2 operations beyond the core set, and the divergences from AWS that AWS-client suites found,
through the AWS CLI v1 against a real server process (and, for the Server header, a real HTTP
client on the listener's socket)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws_cli import AwsCli
from tests.support.server import PortsideProcess, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    process = PortsideProcess(tmp_path_factory.mktemp("elbv2-cli") / "state")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def aws(server: PortsideProcess, tmp_path: Path) -> AwsCli:
    return AwsCli(server, tmp_path, "elbv2")


GOOD = b"GET / HTTP/1.1\r\nHost: cli.test\r\nConnection: close\r\n\r\n"
NO_HOST = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"  # answered 400 by the proxy's parser


def answer_head(port: int, request: bytes = GOOD) -> bytes:
    """The head of the answer to ``request`` on a plain HTTP listener."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply.split(b"\r\n\r\n", 1)[0]


FIXED = json.dumps([{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200", "MessageBody": "ok"}}])


def test_listener_attributes_and_the_server_header_on_the_wire(aws: AwsCli) -> None:
    lb = aws("create-load-balancer", "--name", "attrs", "--scheme", "internal")["LoadBalancers"][0]["LoadBalancerArn"]
    port = free_port()
    arn = aws("create-listener", "--load-balancer-arn", lb, "--protocol", "HTTP", "--port", str(port),
              "--default-actions", FIXED)["Listeners"][0]["ListenerArn"]
    attributes = {a["Key"]: a["Value"] for a in aws("describe-listener-attributes", "--listener-arn", arn)["Attributes"]}
    assert attributes["routing.http.response.server.enabled"] == "true"
    assert attributes["routing.http.response.x_frame_options.header_value"] == ""
    head = eventually(lambda: answer_head(port), what="the listener's answer")
    assert head.startswith(b"HTTP/1.1 200") and b"\r\nServer: portside" in head
    refused = answer_head(port, NO_HOST)
    assert refused.startswith(b"HTTP/1.1 400") and b"\r\nServer: portside" in refused

    aws("modify-listener-attributes", "--listener-arn", arn,
        "--attributes", "Key=routing.http.response.server.enabled,Value=false")
    eventually(lambda: b"\r\nServer:" not in answer_head(port), what="answers without a Server header")
    assert answer_head(port).startswith(b"HTTP/1.1 200")
    refused = answer_head(port, NO_HOST)
    assert refused.startswith(b"HTTP/1.1 400") and b"\r\nServer:" not in refused
    message = aws.fails("InvalidConfigurationRequest", "modify-listener-attributes", "--listener-arn", arn,
                        "--attributes", "Key=routing.http.response.x_frame_options.header_value,Value=DENY")
    assert "x_frame_options" in message
    aws.fails("InvalidConfigurationRequest", "modify-listener-attributes", "--listener-arn", arn,
              "--attributes", "Key=tcp.idle_timeout.seconds,Value=350")
    attributes = {a["Key"]: a["Value"] for a in aws("describe-listener-attributes", "--listener-arn", arn)["Attributes"]}
    assert attributes["routing.http.response.server.enabled"] == "false"
    aws.fails("ValidationError", "create-listener", "--load-balancer-arn", lb, "--protocol", "TCP",
              "--port", str(free_port()), "--default-actions", FIXED)
    aws("delete-load-balancer", "--load-balancer-arn", lb)


def test_load_balancer_network_settings_and_attributes(aws: AwsCli) -> None:
    lb = aws("create-load-balancer", "--name", "net", "--subnets", "subnet-1", "subnet-2",
             "--security-groups", "sg-1")["LoadBalancers"][0]["LoadBalancerArn"]
    zones = aws("set-subnets", "--load-balancer-arn", lb, "--subnets", "subnet-5", "subnet-6")["AvailabilityZones"]
    assert [(z["ZoneName"], z["SubnetId"]) for z in zones] == [("us-east-1a", "subnet-5"), ("us-east-1b", "subnet-6")]
    assert aws("set-security-groups", "--load-balancer-arn", lb, "--security-groups", "sg-7")["SecurityGroupIds"] == ["sg-7"]
    assert aws("set-ip-address-type", "--load-balancer-arn", lb, "--ip-address-type", "ipv4")["IpAddressType"] == "ipv4"
    [described] = aws("describe-load-balancers", "--load-balancer-arns", lb)["LoadBalancers"]
    assert [z["SubnetId"] for z in described["AvailabilityZones"]] == ["subnet-5", "subnet-6"]
    assert described["SecurityGroups"] == ["sg-7"] and described["IpAddressType"] == "ipv4"
    assert "dualstack" in aws.fails("InvalidConfigurationRequest", "set-ip-address-type", "--load-balancer-arn", lb,
                                    "--ip-address-type", "dualstack")
    assert "subnet-5" in aws.fails("ValidationError", "set-subnets", "--load-balancer-arn", lb,
                                   "--subnets", "subnet-5", "subnet-5")
    assert "sg-8" in aws.fails("ValidationError", "set-security-groups", "--load-balancer-arn", lb,
                               "--security-groups", "sg-8", "sg-8")
    assert aws("describe-load-balancers", "--load-balancer-arns", lb)["LoadBalancers"] == [described]

    attributes = {a["Key"]: a["Value"] for a in aws("describe-load-balancer-attributes", "--load-balancer-arn", lb)["Attributes"]}
    assert len(attributes) == 23 and attributes["routing.http2.enabled"] == "true"
    assert attributes["routing.http.xff_header_processing.mode"] == "append"
    aws("modify-load-balancer-attributes", "--load-balancer-arn", lb,
        "--attributes", "Key=routing.http2.enabled,Value=true", "Key=idle_timeout.timeout_seconds,Value=75")
    message = aws.fails("InvalidConfigurationRequest", "modify-load-balancer-attributes", "--load-balancer-arn", lb,
                        "--attributes", "Key=routing.http2.enabled,Value=false")
    assert "routing.http2.enabled" in message
    attributes = {a["Key"]: a["Value"] for a in aws("describe-load-balancer-attributes", "--load-balancer-arn", lb)["Attributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "75" and attributes["routing.http2.enabled"] == "true"
    aws("delete-load-balancer", "--load-balancer-arn", lb)


def test_target_groups_by_name_and_health_of_an_unregistered_target(aws: AwsCli) -> None:
    for name in ("zulu", "alpha", "mike"):
        aws("create-target-group", "--name", f"cli-{name}", "--protocol", "HTTP", "--port", "80", "--vpc-id", "vpc-1")
    groups = aws("describe-target-groups")["TargetGroups"]
    names = [g["TargetGroupName"] for g in groups]
    assert [n for n in names if n.startswith("cli-")] == ["cli-alpha", "cli-mike", "cli-zulu"] and names == sorted(names)
    arn = next(g["TargetGroupArn"] for g in groups if g["TargetGroupName"] == "cli-alpha")
    [health] = aws("describe-target-health", "--target-group-arn", arn,
                   "--targets", "Id=i-0123456789abcdef0,Port=8080")["TargetHealthDescriptions"]
    assert health["TargetHealth"] == {"State": "unused", "Reason": "Target.NotRegistered",
                                      "Description": "Target is not registered to the target group"}
    for group in groups:
        if group["TargetGroupName"].startswith("cli-"):
            aws("delete-target-group", "--target-group-arn", group["TargetGroupArn"])
