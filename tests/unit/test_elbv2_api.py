"""The ELBv2 control plane through the real endpoint, driven by a real boto3 ``elbv2`` client.

The aiohttp app runs on 127.0.0.1:0 in a background event loop thread, over a real SQLite store,
with ``FakeRuntime`` (below) as the data plane: it implements the ``LbRuntime`` protocol and binds
real sockets in ``bind_listener``, so DuplicateListener and port-held errors are real, and
reports every applied configuration. Targets answer what the test asks them to (healthy by
default), so the waiters ``target_in_service`` and ``target_deregistered`` run unmodified.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from portside.agent import host
from portside.api.server import ApiServer
from portside.config import ServerConfig
from tests.support.instances import register_instance
from portside.control.elbv2 import certificates, common, config, targets
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.core.lb.model import LbConfig, Listener
from portside.core.lb.runtime import HealthView, ListenerBindError
from tests.support.signing import signed_post

REGION = "us-east-1"
SRC = Path(__file__).resolve().parents[2] / "src" / "portside"


# ----------------------------------------------------------------------------- the fake data plane


class FakeRuntime:
    """An ``LbRuntime`` that binds real sockets and remembers what it was told."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[Listener, socket.socket]] = {}
        self.config = LbConfig()
        self.calls: list[tuple[Any, ...]] = []
        self.drained: Callable[[str, str, int], None] | None = None
        self.state = "healthy"  # what registered targets report
        self.initial_reports = 0  # answer "initial" this many times first

    def bind_listener(self, listener: Listener) -> None:
        for arn, (other, _sock) in self.bound.items():
            if other.port == listener.port and arn != listener.arn:
                raise ListenerBindError(f"A listener already exists on port {listener.port}.", duplicate=True)
        if listener.arn in self.bound:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listener.bind_host, listener.port))
            sock.listen(8)
        except OSError as exc:
            sock.close()
            raise ListenerBindError(
                f"Port {listener.port} on {listener.bind_host} is already in use by another process ({exc.strerror})."
            ) from exc
        self.bound[listener.arn] = (listener, sock)
        self.calls.append(("bind", listener.arn, listener.port, listener.protocol))

    def close_listener(self, arn: str) -> None:
        entry = self.bound.pop(arn, None)
        if entry is not None:
            entry[1].close()
        self.calls.append(("close", arn))

    def apply(self, config: LbConfig) -> None:
        self.config = config
        self.calls.append(("apply",))

    def target_health(self, target_group_arn: str, target_id: str, port: int) -> HealthView:
        group = self.config.target_groups.get(target_group_arn)
        target = next((t for t in group.targets if (t.id, t.port) == (target_id, port)), None) if group else None
        if target is None:
            return HealthView("unused", "Target.NotRegistered", "Target is not registered to the target group")
        if target.draining:
            return HealthView("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        if self.initial_reports > 0:
            self.initial_reports -= 1
            return HealthView("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
        if self.state == "healthy":
            return HealthView("healthy")
        return HealthView(self.state, "Target.ResponseCodeMismatch", "Health checks failed with these codes: [500]")

    def set_drained_callback(self, callback: Callable[[str, str, int], None]) -> None:
        self.drained = callback

    def close_all(self) -> None:
        for _listener, sock in self.bound.values():
            sock.close()
        self.bound.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- the server under test


class Env:
    """One portside API (ELBv2) on 127.0.0.1:<free port> with a FakeRuntime, and boto3 clients."""

    def __init__(self, state_dir: Path, runtime_factory: Callable[[], Any] = FakeRuntime) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = Clock()
        cfg = ServerConfig(
            state_dir=state_dir, api_port=0, extra={"cluster": "default", "min_health_check_interval": "1"}
        )
        self.store = Store(state_dir / "portside.db")
        self.plane = ControlPlane(cfg, self.store, "arn:aws:ecs:us-east-1:000000000000:container-instance/default/x",
                                  clock=self.clock)
        self.instance_id = host.host_instance_id()
        register_instance(self.plane)
        self.runtime = self.call(runtime_factory)  # built on the loop (the proxy's runtime needs it)
        self.failed_restore = self.call(lambda: config.restore(self.plane, self.runtime))
        self.api = ApiServer(self.plane, None)
        self.run(self.api.start("127.0.0.1", 0))
        assert self.api._runner is not None
        self.port = self.api._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.elb = self.client(REGION)
        # for values below the model's bounds that the server's flags allow (health check interval)
        self.raw = self.client(REGION, parameter_validation=False)

    def client(self, region: str, parameter_validation: bool = True) -> Any:
        return boto3.client(
            "elbv2", endpoint_url=self.endpoint, region_name=region, aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, parameter_validation=parameter_validation),
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread (where the store and runtime live)."""

        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    def close(self) -> None:
        self.run(self.api.close())
        if isinstance(self.runtime, FakeRuntime):
            self.runtime.close_all()
        else:
            self.run(self.runtime.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def message_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Message"])


def expect_error(code: str, fn: Callable[..., Any], **params: Any) -> str:
    with pytest.raises(ClientError) as exc:
        fn(**params)
    assert code_of(exc) == code, exc.value.response
    assert exc.value.response["Error"].get("Type") == "Sender"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return message_of(exc)


def make_lb(env: Env, name: str = "web", scheme: str = "internal", **extra: Any) -> dict[str, Any]:
    return env.elb.create_load_balancer(Name=name, Scheme=scheme, Subnets=["subnet-1", "subnet-2"], **extra)["LoadBalancers"][0]


def make_tg(env: Env, name: str = "web-tg", **extra: Any) -> dict[str, Any]:
    params = {"Protocol": "HTTP", "Port": 80, "VpcId": "vpc-1", **extra}
    return env.elb.create_target_group(Name=name, **params)["TargetGroups"][0]


def forward(tg_arn: str) -> list[dict[str, Any]]:
    return [{"Type": "forward", "TargetGroupArn": tg_arn}]


def make_listener(env: Env, lb: dict[str, Any], tg: dict[str, Any], port: int | None = None, **extra: Any) -> dict[str, Any]:
    return env.elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port or free_port(),
        DefaultActions=forward(tg["TargetGroupArn"]), **extra,
    )["Listeners"][0]


def make_cert(tmp_path: Path, name: str = "site") -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def post(env: Env, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    reply = signed_post(env.endpoint, body, headers)
    return reply.status, reply.body


FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


# ----------------------------------------------------------------------------- load balancers


def test_create_describe_delete_load_balancer(env: Env) -> None:
    lb = env.elb.create_load_balancer(
        Name="web", Subnets=["subnet-a", "subnet-b"], SecurityGroups=["sg-1"], Tags=[{"Key": "team", "Value": "x"}]
    )["LoadBalancers"][0]
    assert re.fullmatch(r"arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/[0-9a-f]{16}", lb["LoadBalancerArn"])
    assert lb["State"] == {"Code": "active"}
    assert lb["Type"] == "application" and lb["Scheme"] == "internet-facing" and lb["IpAddressType"] == "ipv4"
    assert re.fullmatch(r"web-\d+\.us-east-1\.elb\.localhost", lb["DNSName"])
    assert re.fullmatch(r"Z[A-Z0-9]{13}", lb["CanonicalHostedZoneId"])
    assert lb["SecurityGroups"] == ["sg-1"]
    assert [(z["ZoneName"], z["SubnetId"]) for z in lb["AvailabilityZones"]] == [("us-east-1a", "subnet-a"), ("us-east-1b", "subnet-b")]
    internal = env.elb.create_load_balancer(Name="api", Scheme="internal")["LoadBalancers"][0]
    assert internal["DNSName"].startswith("internal-api-") and internal["AvailabilityZones"] == []

    # idempotent with the same settings, refused with different ones
    again = env.elb.create_load_balancer(Name="web", Subnets=["subnet-a", "subnet-b"], SecurityGroups=["sg-1"])["LoadBalancers"][0]
    assert again["LoadBalancerArn"] == lb["LoadBalancerArn"]
    expect_error("DuplicateLoadBalancerName", env.elb.create_load_balancer, Name="web", Scheme="internal")

    by_arn = env.elb.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"]
    assert [b["LoadBalancerName"] for b in by_arn] == ["web"]
    by_name = env.elb.describe_load_balancers(Names=["api", "web"])["LoadBalancers"]
    assert [b["LoadBalancerName"] for b in by_name] == ["api", "web"]
    assert [b["LoadBalancerName"] for b in env.elb.describe_load_balancers()["LoadBalancers"]] == ["web", "api"]
    expect_error("LoadBalancerNotFound", env.elb.describe_load_balancers, Names=["nope"])
    missing = lb["LoadBalancerArn"][:-16] + "0" * 16
    expect_error("LoadBalancerNotFound", env.elb.describe_load_balancers, LoadBalancerArns=[missing])
    expect_error("ValidationError", env.elb.describe_load_balancers, LoadBalancerArns=["arn:aws:nope"])
    env.elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]])
    # another region sees none of it
    assert env.client("eu-west-1").describe_load_balancers()["LoadBalancers"] == []

    env.elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    env.elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])  # idempotent
    assert [b["LoadBalancerName"] for b in env.elb.describe_load_balancers()["LoadBalancers"]] == ["api"]
    env.elb.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[lb["LoadBalancerArn"]])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Name": "internal-web"}, "ValidationError"),
        ({"Name": "-web"}, "ValidationError"),
        ({"Name": "web-"}, "ValidationError"),
        ({"Name": "a" * 33}, "ValidationError"),
        ({"Name": "web_1"}, "ValidationError"),
        ({"Name": "web", "Type": "network"}, "InvalidConfigurationRequest"),
        ({"Name": "web", "IpAddressType": "dualstack"}, "InvalidConfigurationRequest"),
        ({"Name": "web", "Scheme": "public"}, "ValidationError"),
        ({"Name": "web", "Subnets": ["s-1"], "SubnetMappings": [{"SubnetId": "s-2"}]}, "ValidationError"),
        ({"Name": "web", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}, "DuplicateTagKeys"),
    ],
)
def test_create_load_balancer_refusals(env: Env, params: dict[str, Any], code: str) -> None:
    expect_error(code, env.raw.create_load_balancer, **params)
    assert env.elb.describe_load_balancers()["LoadBalancers"] == []


def test_load_balancer_attributes(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    listener = make_listener(env, lb, tg)
    arn = lb["LoadBalancerArn"]
    attrs = {a["Key"]: a["Value"] for a in env.elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    assert {k: attrs[k] for k in ("deletion_protection.enabled", "idle_timeout.timeout_seconds",
                                  "access_logs.s3.enabled", "connection_logs.s3.enabled")} == {
        "deletion_protection.enabled": "false", "idle_timeout.timeout_seconds": "60",
        "access_logs.s3.enabled": "false", "connection_logs.s3.enabled": "false",
    }
    out = env.elb.modify_load_balancer_attributes(
        LoadBalancerArn=arn,
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "120"}, {"Key": "access_logs.s3.enabled", "Value": "false"}],
    )["Attributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in out
    # the proxy gets it: the listener model carries the idle timeout
    assert [(l.arn, l.idle_timeout_s) for l in env.runtime.config.listeners] == [(listener["ListenerArn"], 120)]
    for key, value in [
        ("idle_timeout.timeout_seconds", "0"), ("idle_timeout.timeout_seconds", "4001"),
        ("idle_timeout.timeout_seconds", "x"), ("routing.http2.enabled", "false"),
        ("access_logs.s3.enabled", "true"), ("no.such.key", "1"), ("deletion_protection.enabled", "maybe"),
    ]:
        message = expect_error("InvalidConfigurationRequest", env.elb.modify_load_balancer_attributes,
                               LoadBalancerArn=arn, Attributes=[{"Key": key, "Value": value}])
        assert key in message
    # a refused batch changes nothing, even its valid items
    expect_error("InvalidConfigurationRequest", env.elb.modify_load_balancer_attributes, LoadBalancerArn=arn,
                 Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "30"}, {"Key": "waf.fail_open.enabled", "Value": "true"}])
    attrs = {a["Key"]: a["Value"] for a in env.elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "120"

    env.elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}])
    expect_error("OperationNotPermitted", env.elb.delete_load_balancer, LoadBalancerArn=arn)
    env.elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
    env.elb.delete_load_balancer(LoadBalancerArn=arn)
    expect_error("LoadBalancerNotFound", env.elb.describe_load_balancer_attributes, LoadBalancerArn=arn)


def test_delete_load_balancer_removes_listeners_rules_and_closes_them(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    listener = make_listener(env, lb, tg)
    rule = env.elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=1,
                               Conditions=[{"Field": "path-pattern", "Values": ["/a"]}], Actions=forward(tg["TargetGroupArn"]))["Rules"][0]
    env.elb.add_tags(ResourceArns=[rule["RuleArn"]], Tags=[{"Key": "k", "Value": "v"}])
    assert listener["ListenerArn"] in env.runtime.bound
    env.elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert listener["ListenerArn"] not in env.runtime.bound
    assert ("close", listener["ListenerArn"]) in env.runtime.calls
    assert env.runtime.config.listeners == ()
    expect_error("ListenerNotFound", env.elb.describe_listeners, ListenerArns=[listener["ListenerArn"]])
    expect_error("RuleNotFound", env.elb.describe_rules, RuleArns=[rule["RuleArn"]])
    assert env.store.db.execute("SELECT COUNT(*) FROM elb_tags").fetchone()[0] == 0
    # the target group is free again
    assert env.elb.describe_target_groups()["TargetGroups"][0]["LoadBalancerArns"] == []
    env.elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


# ----------------------------------------------------------------------------- target groups


def test_target_group_defaults_describe_modify_delete(env: Env) -> None:
    tg = env.elb.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId="vpc-1")["TargetGroups"][0]
    assert re.fullmatch(r"arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/[0-9a-f]{16}", tg["TargetGroupArn"])
    expected = {
        "TargetGroupName": "web", "Protocol": "HTTP", "Port": 8080, "VpcId": "vpc-1", "HealthCheckProtocol": "HTTP",
        "HealthCheckPort": "traffic-port", "HealthCheckEnabled": True, "HealthCheckIntervalSeconds": 30,
        "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 5, "UnhealthyThresholdCount": 2,
        "HealthCheckPath": "/", "Matcher": {"HttpCode": "200"}, "LoadBalancerArns": [], "TargetType": "instance",
        "ProtocolVersion": "HTTP1", "IpAddressType": "ipv4",
    }
    assert {k: tg[k] for k in expected} == expected
    # idempotent, then a different setting is a duplicate
    same = env.elb.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId="vpc-1")["TargetGroups"][0]
    assert same["TargetGroupArn"] == tg["TargetGroupArn"]
    expect_error("DuplicateTargetGroupName", env.elb.create_target_group, Name="web", Protocol="HTTP", Port=8081, VpcId="vpc-1")

    ip = env.raw.create_target_group(
        Name="ip", Protocol="HTTPS", Port=443, TargetType="ip", HealthCheckPath="/up", HealthCheckIntervalSeconds=2,
        HealthCheckTimeoutSeconds=1, HealthyThresholdCount=2, Matcher={"HttpCode": "200-299"}, HealthCheckPort="9000",
    )["TargetGroups"][0]
    assert (ip["HealthCheckPath"], ip["HealthCheckIntervalSeconds"], ip["HealthCheckTimeoutSeconds"]) == ("/up", 2, 1)
    assert ip["Matcher"] == {"HttpCode": "200-299"} and ip["HealthCheckPort"] == "9000" and ip["TargetType"] == "ip"

    by_name = env.elb.describe_target_groups(Names=["ip", "web"])["TargetGroups"]
    assert [g["TargetGroupName"] for g in by_name] == ["ip", "web"]
    assert [g["TargetGroupName"] for g in env.elb.describe_target_groups()["TargetGroups"]] == ["ip", "web"]  # by name, as AWS lists them
    expect_error("TargetGroupNotFound", env.elb.describe_target_groups, Names=["nope"])
    expect_error("TargetGroupNotFound", env.elb.describe_target_groups, TargetGroupArns=[tg["TargetGroupArn"][:-16] + "f" * 16])

    modified = env.elb.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPath="/health",
                                           HealthCheckIntervalSeconds=10, Matcher={"HttpCode": "200,204"})["TargetGroups"][0]
    assert (modified["HealthCheckPath"], modified["HealthCheckIntervalSeconds"], modified["Matcher"]) == ("/health", 10, {"HttpCode": "200,204"})
    assert modified["HealthCheckTimeoutSeconds"] == 5  # untouched members keep their values
    group = env.runtime.config.target_groups[tg["TargetGroupArn"]]
    assert (group.health_check.path, group.health_check.interval_s, group.health_check.matcher) == ("/health", 10, "200,204")
    # a refused modification changes nothing
    expect_error("ValidationError", env.elb.modify_target_group, TargetGroupArn=tg["TargetGroupArn"],
                 HealthCheckPath="/x", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=6)
    assert env.elb.describe_target_groups(Names=["web"])["TargetGroups"][0]["HealthCheckPath"] == "/health"
    expect_error("TargetGroupNotFound", env.elb.modify_target_group,
                 TargetGroupArn=tg["TargetGroupArn"][:-16] + "f" * 16, HealthCheckPath="/x")

    env.elb.delete_target_group(TargetGroupArn=ip["TargetGroupArn"])
    env.elb.delete_target_group(TargetGroupArn=ip["TargetGroupArn"])  # already gone: succeeds
    assert [g["TargetGroupName"] for g in env.elb.describe_target_groups()["TargetGroups"]] == ["web"]
    assert list(env.runtime.config.target_groups) == [tg["TargetGroupArn"]]


def test_a_nul_in_any_query_parameter_is_refused_at_the_edge_naming_it(env: Env) -> None:
    """NUL never reaches an operation: no store holds it in text (PostgreSQL refuses it)."""
    message = expect_error("ValidationError", env.raw.create_target_group, Name="tg", Protocol="HTTP", Port=80,
                           HealthCheckPath="/nul\x00")
    assert "'HealthCheckPath' holds a NUL character" in message
    assert env.elb.describe_target_groups()["TargetGroups"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Protocol": "TCP", "Port": 80}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 80, "TargetType": "lambda"}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 80, "TargetType": "alb"}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 80, "ProtocolVersion": "HTTP2"}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 80, "ProtocolVersion": "SPDY"}, "ValidationError"),
        ({"Port": 80}, "ValidationError"),
        ({"Protocol": "HTTP"}, "ValidationError"),
        ({"Protocol": "HTTP", "Port": 80, "HealthCheckEnabled": False}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 80, "HealthCheckIntervalSeconds": 300, "HealthCheckTimeoutSeconds": 300}, "ValidationError"),
        ({"Protocol": "HTTP", "Port": 80, "Matcher": {"HttpCode": "600"}}, "ValidationError"),
        ({"Protocol": "HTTP", "Port": 80, "HealthCheckPath": "no-slash"}, "ValidationError"),
        ({"Protocol": "HTTP", "Port": 0}, "ValidationError"),
    ],
)
def test_create_target_group_refusals(env: Env, params: dict[str, Any], code: str) -> None:
    expect_error(code, env.raw.create_target_group, Name="tg", **params)
    assert env.elb.describe_target_groups()["TargetGroups"] == []


@pytest.mark.parametrize("path", ["/health\r\nX-Injected: 1", "/a b", "/caf\u00e9"])
def test_health_check_path_with_spaces_controls_or_non_ascii_is_refused(env: Env, path: str) -> None:
    message = expect_error("ValidationError", env.raw.create_target_group, Name="tg", Protocol="HTTP", Port=80,
                           HealthCheckPath=path)
    assert "'healthCheckPath'" in message and "visible ASCII" in message
    assert env.elb.describe_target_groups()["TargetGroups"] == []
    tg = env.elb.create_target_group(Name="tg", Protocol="HTTP", Port=80, HealthCheckPath="/up")["TargetGroups"][0]
    message = expect_error("ValidationError", env.raw.modify_target_group, TargetGroupArn=tg["TargetGroupArn"],
                           HealthCheckPath=path, HealthCheckIntervalSeconds=10)
    assert "'healthCheckPath'" in message
    stored = env.elb.describe_target_groups(Names=["tg"])["TargetGroups"][0]
    assert (stored["HealthCheckPath"], stored["HealthCheckIntervalSeconds"]) == ("/up", 30)  # nothing changed
    assert env.runtime.config.target_groups[tg["TargetGroupArn"]].health_check.path == "/up"


def test_min_health_check_interval_is_the_servers_floor(env: Env) -> None:
    env.plane.config.extra["min_health_check_interval"] = "5"
    message = expect_error("ValidationError", env.raw.create_target_group, Name="tg", Protocol="HTTP", Port=80,
                           HealthCheckIntervalSeconds=2)
    assert "greater than or equal to 5" in message
    expect_error("ValidationError", env.raw.create_target_group, Name="tg", Protocol="HTTP", Port=80,
                 HealthCheckIntervalSeconds=301)
    expect_error("ValidationError", env.raw.create_target_group, Name="tg", Protocol="HTTP", Port=80,
                 HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=1)
    env.plane.config.extra["min_health_check_interval"] = "1"
    tg = env.raw.create_target_group(Name="tg", Protocol="HTTP", Port=80, HealthCheckIntervalSeconds=1)["TargetGroups"][0]
    assert tg["HealthCheckIntervalSeconds"] == 1 and tg["HealthCheckTimeoutSeconds"] < 1 + 1
    modified = env.raw.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckIntervalSeconds=3,
                                           HealthCheckTimeoutSeconds=2)["TargetGroups"][0]
    assert (modified["HealthCheckIntervalSeconds"], modified["HealthCheckTimeoutSeconds"]) == (3, 2)


def test_target_group_attributes(env: Env) -> None:
    tg = make_tg(env)
    arn = tg["TargetGroupArn"]
    attrs = {a["Key"]: a["Value"] for a in env.elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "300" and attrs["stickiness.enabled"] == "false"
    out = env.elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "30"},
        {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"},
    ])["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in out
    group = env.runtime.config.target_groups[arn]
    assert (group.attributes.deregistration_delay_s, group.attributes.algorithm) == (30, "least_outstanding_requests")
    expect_error("InvalidConfigurationRequest", env.elb.modify_target_group_attributes, TargetGroupArn=arn,
                 Attributes=[{"Key": "slow_start.duration_seconds", "Value": "60"}])
    expect_error("ValidationError", env.elb.modify_target_group_attributes, TargetGroupArn=arn,
                 Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5000"}])
    expect_error("ValidationError", env.elb.modify_target_group_attributes, TargetGroupArn=arn,
                 Attributes=[{"Key": "no.such", "Value": "1"}])
    attrs = {a["Key"]: a["Value"] for a in env.elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "30" and attrs["slow_start.duration_seconds"] == "0"
    expect_error("TargetGroupNotFound", env.elb.describe_target_group_attributes, TargetGroupArn=arn[:-16] + "0" * 16)


def test_delete_target_group_in_use_is_refused(env: Env) -> None:
    lb = make_lb(env)
    tg, other = make_tg(env), make_tg(env, "other")
    listener = make_listener(env, lb, tg)
    rule = env.elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=5,
                               Conditions=[{"Field": "host-header", "Values": ["a.example.com"]}], Actions=forward(other["TargetGroupArn"]))["Rules"][0]
    for group in (tg, other):
        expect_error("ResourceInUse", env.elb.delete_target_group, TargetGroupArn=group["TargetGroupArn"])
    described = {g["TargetGroupName"]: g["LoadBalancerArns"] for g in env.elb.describe_target_groups()["TargetGroups"]}
    assert described == {"web-tg": [lb["LoadBalancerArn"]], "other": [lb["LoadBalancerArn"]]}
    by_lb = env.elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    assert {g["TargetGroupName"] for g in by_lb} == {"web-tg", "other"}
    env.elb.delete_rule(RuleArn=rule["RuleArn"])
    env.elb.delete_target_group(TargetGroupArn=other["TargetGroupArn"])
    expect_error("LoadBalancerNotFound", env.elb.describe_target_groups, LoadBalancerArn=lb["LoadBalancerArn"][:-16] + "0" * 16)


# ----------------------------------------------------------------------------- targets and health


def test_register_describe_deregister_targets_and_waiters(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env, Port=80)
    arn = tg["TargetGroupArn"]
    me = env.instance_id
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}, {"Id": me, "Port": 32769}, {"Id": me}])
    health = env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert [(d["Target"]["Id"], d["Target"]["Port"], d["HealthCheckPort"]) for d in health] == [
        (me, 32768, "32768"), (me, 32769, "32769"), (me, 80, "80")
    ]
    # no listener forwards to the group yet
    assert {d["TargetHealth"]["Reason"] for d in health} == {"Target.NotInUse"}
    assert health[0]["TargetHealth"]["State"] == "unused"
    group = env.runtime.config.target_groups[arn]
    assert [(t.id, t.port, t.address, t.draining) for t in group.targets] == [
        (me, 32768, "127.0.0.1", False), (me, 32769, "127.0.0.1", False), (me, 80, "127.0.0.1", False)
    ]

    make_listener(env, lb, tg)
    env.runtime.initial_reports = 2
    first = env.elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}])["TargetHealthDescriptions"]
    assert first[0]["TargetHealth"] == {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                                        "Description": "Initial health checks in progress"}
    env.elb.get_waiter("target_in_service").wait(TargetGroupArn=arn, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    healthy = env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    assert all(d["TargetHealth"] == {"State": "healthy"} for d in healthy)

    # an unregistered target of a known instance: unused / Target.NotRegistered
    unknown = env.elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 1234}])["TargetHealthDescriptions"]
    assert unknown[0]["TargetHealth"] == {"State": "unused", "Reason": "Target.NotRegistered",
                                          "Description": "Target is not registered to the target group"}
    # so is an instance id that is no container instance at all (AWS answers the same)
    stranger = env.elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": "i-0123456789abcdef0"}])
    assert stranger["TargetHealthDescriptions"] == [{
        "Target": {"Id": "i-0123456789abcdef0", "Port": 80}, "HealthCheckPort": "80",
        "TargetHealth": {"State": "unused", "Reason": "Target.NotRegistered",
                         "Description": "Target is not registered to the target group"},
    }]

    # deregistration drains; the waiter returns once the runtime reports the target drained
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}])
    draining = env.elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}])["TargetHealthDescriptions"]
    assert draining[0]["TargetHealth"] == {"State": "draining", "Reason": "Target.DeregistrationInProgress",
                                           "Description": "Target deregistration is in progress"}
    drained_target = next(t for t in env.runtime.config.target_groups[arn].targets if t.port == 32768)
    assert drained_target.draining and drained_target.drain_deadline == env.clock.now + 300
    with pytest.raises(WaiterError):
        env.elb.get_waiter("target_deregistered").wait(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}],
                                                      WaiterConfig={"Delay": 1, "MaxAttempts": 1})
    assert env.runtime.drained is not None
    env.loop.call_soon_threadsafe(env.runtime.drained, arn, me, 32768)
    env.elb.get_waiter("target_deregistered").wait(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32768}],
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    assert [t.port for t in env.runtime.config.target_groups[arn].targets] == [32769, 80]

    # deregistering something never registered succeeds; re-registering a draining target restores it
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 4444}])
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32769}])
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32769}])
    state = env.elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": me, "Port": 32769}])["TargetHealthDescriptions"]
    assert state[0]["TargetHealth"]["State"] == "healthy"
    assert not next(t for t in env.runtime.config.target_groups[arn].targets if t.port == 32769).draining
    # a drained callback for a target that is registered again does not remove it
    env.call(lambda: env.runtime.drained(arn, me, 32769))  # type: ignore[misc]
    assert [t.port for t in env.runtime.config.target_groups[arn].targets] == [32769, 80]


def test_sweeper_forgets_targets_past_their_deadline(env: Env) -> None:
    tg = make_tg(env)
    arn = tg["TargetGroupArn"]
    env.elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}, {"Id": env.instance_id, "Port": 1002}])
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}])
    env.clock.now += 10
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1002}])
    env.clock.now += 25  # the first deadline has passed, not the second
    assert env.call(lambda: targets.sweep(env.plane)) == 1
    assert [(t.port, t.draining) for t in env.runtime.config.target_groups[arn].targets] == [(1002, True)]
    env.clock.now += 10
    assert env.call(lambda: targets.sweep(env.plane)) == 1
    assert env.runtime.config.target_groups[arn].targets == ()
    # a zero delay forgets the target at once
    env.elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1003}])
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1003}])
    assert env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []


async def _sweeper_runs(plane: ControlPlane) -> None:
    task = asyncio.ensure_future(targets.run_sweeper(plane, interval_s=0.01))
    await asyncio.sleep(0.1)
    task.cancel()


def test_run_sweeper_sweeps_periodically(env: Env) -> None:
    tg = make_tg(env)
    arn = tg["TargetGroupArn"]
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}])
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}])
    env.clock.now += 301
    env.run(_sweeper_runs(env.plane))
    assert env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []


def test_register_targets_refusals_change_nothing(env: Env) -> None:
    tg = make_tg(env)
    arn = tg["TargetGroupArn"]
    message = expect_error("InvalidTarget", env.elb.register_targets, TargetGroupArn=arn,
                           Targets=[{"Id": env.instance_id, "Port": 1}, {"Id": "i-0aaaaaaaaaaaaaaaa"}])
    assert message == "The following targets are not in a running state and cannot be registered: 'i-0aaaaaaaaaaaaaaaa'"
    assert env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []
    expect_error("ValidationError", env.elb.register_targets, TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 70000}])
    expect_error("TargetGroupNotFound", env.elb.register_targets, TargetGroupArn=arn[:-16] + "0" * 16, Targets=[{"Id": env.instance_id}])
    # an instance id is no IP address
    ip = make_tg(env, "ip", TargetType="ip")
    expect_error("InvalidTarget", env.elb.register_targets, TargetGroupArn=ip["TargetGroupArn"], Targets=[{"Id": env.instance_id}])
    env.elb.register_targets(TargetGroupArn=ip["TargetGroupArn"], Targets=[
        {"Id": "127.0.0.1", "Port": 8080}, {"Id": "::1", "Port": 8080, "AvailabilityZone": "all"}, {"Id": "10.1.2.3"}])
    group = env.runtime.config.target_groups[ip["TargetGroupArn"]]
    assert [(t.id, t.port, t.address) for t in group.targets] == [
        ("127.0.0.1", 8080, "127.0.0.1"), ("::1", 8080, "::1"), ("10.1.2.3", 80, "10.1.2.3")
    ]
    described = env.elb.describe_target_health(TargetGroupArn=ip["TargetGroupArn"], Targets=[{"Id": "::1", "Port": 8080}])
    assert described["TargetHealthDescriptions"][0]["Target"] == {"Id": "::1", "Port": 8080, "AvailabilityZone": "all"}


# ----------------------------------------------------------------------------- listeners


def test_listener_lifecycle_binds_through_the_runtime(env: Env) -> None:
    lb = make_lb(env, scheme="internal")
    public = make_lb(env, "edge", scheme="internet-facing")
    tg = make_tg(env)
    port = free_port()
    listener = env.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                                       DefaultActions=forward(tg["TargetGroupArn"]), Tags=[{"Key": "a", "Value": "b"}])["Listeners"][0]
    assert re.fullmatch(
        r"arn:aws:elasticloadbalancing:us-east-1:000000000000:listener/app/web/[0-9a-f]{16}/[0-9a-f]{16}", listener["ListenerArn"]
    )
    assert listener["ListenerArn"].split("/")[2:4] == lb["LoadBalancerArn"].split("/")[2:4]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
    assert listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"] == [{"TargetGroupArn": tg["TargetGroupArn"], "Weight": 1}]
    bound = env.runtime.bound[listener["ListenerArn"]][0]
    assert (bound.port, bound.bind_host, bound.protocol) == (port, "127.0.0.1", "HTTP")
    assert [r.is_default for r in bound.rules] == [True]
    # idempotent
    again = make_listener(env, lb, tg, port=port)
    assert again["ListenerArn"] == listener["ListenerArn"]
    # ports are host-global: the same port on another load balancer is a duplicate
    message = expect_error("DuplicateListener", env.elb.create_listener, LoadBalancerArn=public["LoadBalancerArn"], Protocol="HTTP",
                           Port=port, DefaultActions=forward(tg["TargetGroupArn"]))
    assert lb["LoadBalancerArn"] in message
    expect_error("DuplicateListener", env.elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP",
                 Port=port, DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}])
    # internet-facing listeners bind every address
    other_tg = make_tg(env, "edge-tg")
    edge = make_listener(env, public, other_tg)
    assert env.runtime.bound[edge["ListenerArn"]][0].bind_host == "0.0.0.0"

    described = env.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [l["ListenerArn"] for l in described] == [listener["ListenerArn"]]
    assert env.elb.describe_listeners(ListenerArns=[edge["ListenerArn"]])["Listeners"][0]["Port"] == edge["Port"]
    expect_error("ValidationError", env.elb.describe_listeners)
    expect_error("ListenerNotFound", env.elb.describe_listeners, ListenerArns=[listener["ListenerArn"][:-16] + "0" * 16])
    expect_error("LoadBalancerNotFound", env.elb.describe_listeners, LoadBalancerArn=lb["LoadBalancerArn"][:-16] + "0" * 16)

    # the listener model the runtime gets
    models = {l.arn: l for l in env.runtime.config.listeners}
    assert set(models) == {listener["ListenerArn"], edge["ListenerArn"]}

    env.elb.delete_listener(ListenerArn=listener["ListenerArn"])
    assert listener["ListenerArn"] not in env.runtime.bound
    with socket.socket() as probe:  # really closed
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    expect_error("ListenerNotFound", env.elb.delete_listener, ListenerArn=listener["ListenerArn"])
    assert {l.arn for l in env.runtime.config.listeners} == {edge["ListenerArn"]}


def test_listener_on_a_port_held_elsewhere_is_refused_and_nothing_is_stored(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        message = expect_error("InvalidConfigurationRequest", env.elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"],
                               Protocol="HTTP", Port=port, DefaultActions=forward(tg["TargetGroupArn"]))
        assert f"Port {port}" in message and "in use" in message
    assert env.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    assert env.store.db.execute("SELECT COUNT(*) FROM elb_rules").fetchone()[0] == 0
    assert env.runtime.bound == {}


def test_runtime_duplicate_bind_is_duplicate_listener(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    port = free_port()
    # a listener the runtime holds that the store does not know (e.g. another plane's)
    env.call(lambda: env.runtime.bind_listener(Listener("arn:other", "arn:lb", "HTTP", port, "127.0.0.1", ())))
    expect_error("DuplicateListener", env.elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP",
                 Port=port, DefaultActions=forward(tg["TargetGroupArn"]))
    assert env.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Protocol": "TCP"}, "ValidationError"),
        ({"Protocol": "TLS"}, "ValidationError"),
        ({"Protocol": "HTTPS"}, "ValidationError"),
        ({"Protocol": "HTTPS", "Certificates": [{"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/nope"}]}, "CertificateNotFound"),
        ({"Protocol": "HTTP", "Certificates": [{"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/nope"}]}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "AlpnPolicy": ["HTTP2Only"]}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "AlpnPolicy": ["Bogus"]}, "ALPNPolicyNotFound"),
        ({"Protocol": "HTTP", "DefaultActions": [{"Type": "forward", "TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/x/0000000000000000"}]}, "TargetGroupNotFound"),
        ({"Protocol": "HTTP", "DefaultActions": [{"Type": "authenticate-oidc"}]}, "InvalidLoadBalancerAction"),
        ({"Protocol": "HTTP", "DefaultActions": [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301"}}]}, "InvalidLoadBalancerAction"),
        ({"Protocol": "HTTP", "DefaultActions": []}, "ValidationError"),
        ({"Protocol": "HTTP", "MutualAuthentication": {"Mode": "verify"}}, "InvalidConfigurationRequest"),
        ({"Protocol": "HTTP", "Port": 0}, "ValidationError"),
    ],
)
def test_create_listener_refusals(env: Env, params: dict[str, Any], code: str) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    request = {"LoadBalancerArn": lb["LoadBalancerArn"], "Port": free_port(), "DefaultActions": forward(tg["TargetGroupArn"]), **params}
    expect_error(code, env.raw.create_listener, **request)
    assert env.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    assert env.runtime.bound == {}


def test_target_group_serves_one_load_balancer(env: Env) -> None:
    first, second = make_lb(env, "one"), make_lb(env, "two")
    tg = make_tg(env)
    make_listener(env, first, tg)
    expect_error("TargetGroupAssociationLimit", env.elb.create_listener, LoadBalancerArn=second["LoadBalancerArn"],
                 Protocol="HTTP", Port=free_port(), DefaultActions=forward(tg["TargetGroupArn"]))


def test_https_listener_with_an_imported_certificate(env: Env, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    arn = env.call(lambda: certificates.import_certificate(env.plane, "site", cert, key))
    assert re.fullmatch(r"arn:aws:acm:us-east-1:000000000000:certificate/[0-9a-f-]{36}", arn)
    lb = make_lb(env)
    tg = make_tg(env)
    listener = env.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=free_port(),
                                       Certificates=[{"CertificateArn": arn}], AlpnPolicy=["HTTP1Only"],
                                       DefaultActions=forward(tg["TargetGroupArn"]))["Listeners"][0]
    assert listener["SslPolicy"] == "ELBSecurityPolicy-2016-08"
    assert listener["Certificates"] == [{"CertificateArn": arn}] and listener["AlpnPolicy"] == ["HTTP1Only"]
    model = env.runtime.bound[listener["ListenerArn"]][0]
    assert [c.arn for c in model.certificates] == [arn]
    assert Path(model.certificates[0].cert_path).read_bytes() == cert.read_bytes()
    # to HTTP: rebinds, certificates and policy go
    http = env.elb.modify_listener(ListenerArn=listener["ListenerArn"], Protocol="HTTP")["Listeners"][0]
    assert "Certificates" not in http and "SslPolicy" not in http
    assert env.runtime.bound[listener["ListenerArn"]][0].protocol == "HTTP"
    expect_error("ValidationError", env.elb.modify_listener, ListenerArn=listener["ListenerArn"], Protocol="HTTPS")
    back = env.elb.modify_listener(ListenerArn=listener["ListenerArn"], Protocol="HTTPS", Certificates=[{"CertificateArn": arn}],
                                   SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06")["Listeners"][0]
    assert back["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    expect_error("SSLPolicyNotFound", env.elb.modify_listener, ListenerArn=listener["ListenerArn"], SslPolicy="Mine")


def test_modify_listener_port_rebinds_and_failure_keeps_the_old_port(env: Env) -> None:
    lb = make_lb(env)
    tg, other = make_tg(env), make_tg(env, "other")
    old_port, new_port = free_port(), free_port()
    listener = make_listener(env, lb, tg, port=old_port)
    arn = listener["ListenerArn"]
    moved = env.elb.modify_listener(ListenerArn=arn, Port=new_port, DefaultActions=forward(other["TargetGroupArn"]))["Listeners"][0]
    assert moved["Port"] == new_port and moved["DefaultActions"][0]["TargetGroupArn"] == other["TargetGroupArn"]
    assert env.runtime.bound[arn][0].port == new_port
    default_rule = env.elb.describe_rules(ListenerArn=arn)["Rules"][0]
    assert default_rule["IsDefault"] and default_rule["Actions"][0]["TargetGroupArn"] == other["TargetGroupArn"]
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", old_port))  # the old port is free again

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        held = holder.getsockname()[1]
        expect_error("InvalidConfigurationRequest", env.elb.modify_listener, ListenerArn=arn, Port=held,
                     DefaultActions=forward(tg["TargetGroupArn"]))
    assert env.runtime.bound[arn][0].port == new_port
    after = env.elb.describe_listeners(ListenerArns=[arn])["Listeners"][0]
    assert after["Port"] == new_port and after["DefaultActions"][0]["TargetGroupArn"] == other["TargetGroupArn"]
    # a bad default action refuses the whole change before anything is touched
    calls = len(env.runtime.calls)
    expect_error("TargetGroupNotFound", env.elb.modify_listener, ListenerArn=arn, Port=free_port(),
                 DefaultActions=forward(tg["TargetGroupArn"][:-16] + "0" * 16))
    assert env.runtime.calls[calls:] == [] and env.runtime.bound[arn][0].port == new_port
    # another stored listener's port
    second = make_listener(env, lb, tg)
    expect_error("DuplicateListener", env.elb.modify_listener, ListenerArn=arn, Port=second["Port"])


# ----------------------------------------------------------------------------- rules


def test_rules_create_describe_modify_delete_priorities(env: Env) -> None:
    lb = make_lb(env)
    api, web = make_tg(env, "api"), make_tg(env, "web")
    listener = make_listener(env, lb, web)
    larn = listener["ListenerArn"]
    r10 = env.elb.create_rule(ListenerArn=larn, Priority=10, Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
                              Actions=forward(api["TargetGroupArn"]), Tags=[{"Key": "r", "Value": "10"}])["Rules"][0]
    assert re.fullmatch(
        r"arn:aws:elasticloadbalancing:us-east-1:000000000000:listener-rule/app/web/[0-9a-f]{16}/[0-9a-f]{16}/[0-9a-f]{16}", r10["RuleArn"]
    )
    assert r10["Priority"] == "10" and r10["IsDefault"] is False
    assert r10["Conditions"] == [{"Field": "path-pattern", "Values": ["/api/*"], "PathPatternConfig": {"Values": ["/api/*"]}}]
    r5 = env.elb.create_rule(ListenerArn=larn, Priority=5, Conditions=[
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["a.example.com", "*.b.example.com"]}},
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["canary"]}},
    ], Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain", "MessageBody": "no"}}])["Rules"][0]
    expect_error("PriorityInUse", env.elb.create_rule, ListenerArn=larn, Priority=10,
                 Conditions=[{"Field": "path-pattern", "Values": ["/x"]}], Actions=forward(api["TargetGroupArn"]))

    rules = env.elb.describe_rules(ListenerArn=larn)["Rules"]
    assert [r["Priority"] for r in rules] == ["5", "10", "default"]
    assert rules[-1]["IsDefault"] is True and rules[-1]["Conditions"] == []
    assert rules[-1]["Actions"][0]["TargetGroupArn"] == web["TargetGroupArn"]
    model = env.runtime.config.listeners[0]
    assert [(r.priority, r.is_default) for r in model.rules] == [(5, False), (10, False), (50001, True)]
    assert model.rules[0].conditions[0].values == ("a.example.com", "*.b.example.com")
    assert model.rules[0].actions[0].fixed_status == 503
    assert env.elb.describe_rules(RuleArns=[r10["RuleArn"]])["Rules"][0]["Priority"] == "10"
    expect_error("ValidationError", env.elb.describe_rules)
    expect_error("RuleNotFound", env.elb.describe_rules, RuleArns=[r10["RuleArn"][:-16] + "0" * 16])
    expect_error("ListenerNotFound", env.elb.describe_rules, ListenerArn=larn[:-16] + "0" * 16)

    # ModifyRule replaces whole lists
    modified = env.elb.modify_rule(RuleArn=r10["RuleArn"], Conditions=[{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}])["Rules"][0]
    assert modified["Conditions"] == [{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}]
    assert modified["Actions"][0]["TargetGroupArn"] == api["TargetGroupArn"]
    default = rules[-1]
    changed = env.elb.modify_rule(RuleArn=default["RuleArn"], Actions=forward(api["TargetGroupArn"]))["Rules"][0]
    assert changed["IsDefault"] and changed["Actions"][0]["TargetGroupArn"] == api["TargetGroupArn"]
    assert env.elb.describe_listeners(ListenerArns=[larn])["Listeners"][0]["DefaultActions"][0]["TargetGroupArn"] == api["TargetGroupArn"]
    expect_error("OperationNotPermitted", env.elb.modify_rule, RuleArn=default["RuleArn"],
                 Conditions=[{"Field": "path-pattern", "Values": ["/x"]}])
    expect_error("ValidationError", env.elb.modify_rule, RuleArn=r10["RuleArn"], Conditions=[{"Field": "nope", "Values": ["x"]}])

    # SetRulePriorities swaps atomically; a collision changes nothing
    swapped = env.elb.set_rule_priorities(RulePriorities=[{"RuleArn": r5["RuleArn"], "Priority": 10}, {"RuleArn": r10["RuleArn"], "Priority": 5}])["Rules"]
    assert {r["RuleArn"]: r["Priority"] for r in swapped} == {r5["RuleArn"]: "10", r10["RuleArn"]: "5"}
    expect_error("PriorityInUse", env.elb.set_rule_priorities, RulePriorities=[{"RuleArn": r5["RuleArn"], "Priority": 5}])
    assert [r["RuleArn"] for r in env.elb.describe_rules(ListenerArn=larn)["Rules"]][:2] == [r10["RuleArn"], r5["RuleArn"]]
    expect_error("OperationNotPermitted", env.elb.set_rule_priorities, RulePriorities=[{"RuleArn": default["RuleArn"], "Priority": 7}])
    expect_error("RuleNotFound", env.elb.set_rule_priorities, RulePriorities=[{"RuleArn": r5["RuleArn"][:-16] + "0" * 16, "Priority": 7}])
    expect_error("ValidationError", env.elb.set_rule_priorities, RulePriorities=[{"RuleArn": r5["RuleArn"], "Priority": 50001}])

    expect_error("OperationNotPermitted", env.elb.delete_rule, RuleArn=default["RuleArn"])
    env.elb.delete_rule(RuleArn=r5["RuleArn"])
    expect_error("RuleNotFound", env.elb.delete_rule, RuleArn=r5["RuleArn"])
    assert [r["Priority"] for r in env.elb.describe_rules(ListenerArn=larn)["Rules"]] == ["5", "default"]
    assert [r.priority for r in env.runtime.config.listeners[0].rules] == [5, 50001]


@pytest.mark.parametrize(
    ("conditions", "actions", "code"),
    [
        ([], None, "ValidationError"),
        ([{"Field": "path-pattern", "Values": ["/a"]}, {"Field": "path-pattern", "Values": ["/b"]}], None, "ValidationError"),
        ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["not-a-cidr"]}}], None, "ValidationError"),
        ([{"Field": "path-pattern", "Values": ["/a"]}], [{"Type": "forward", "TargetGroupArn": "bad-arn"}], "TargetGroupNotFound"),
        ([{"Field": "path-pattern", "Values": ["/a"]}], [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}}], "ValidationError"),
        ([{"Field": "path-pattern", "RegexValues": ["^/a$"]}], None, "InvalidConfigurationRequest"),
    ],
)
def test_create_rule_refusals(env: Env, conditions: list[Any], actions: Any, code: str) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    listener = make_listener(env, lb, tg)
    expect_error(code, env.raw.create_rule, ListenerArn=listener["ListenerArn"], Priority=1, Conditions=conditions,
                 Actions=actions or forward(tg["TargetGroupArn"]))
    assert len(env.elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]) == 1


def test_too_many_rules(env: Env) -> None:
    lb = make_lb(env)
    tg = make_tg(env)
    larn = make_listener(env, lb, tg)["ListenerArn"]
    for priority in range(1, 101):
        env.elb.create_rule(ListenerArn=larn, Priority=priority, Conditions=[{"Field": "path-pattern", "Values": [f"/{priority}"]}],
                            Actions=forward(tg["TargetGroupArn"]))
    expect_error("TooManyRules", env.elb.create_rule, ListenerArn=larn, Priority=101,
                 Conditions=[{"Field": "path-pattern", "Values": ["/x"]}], Actions=forward(tg["TargetGroupArn"]))
    # pages of DescribeRules walk all 101 rules in priority order, default last
    paginator = env.elb.get_paginator("describe_rules")
    seen = [r["Priority"] for page in paginator.paginate(ListenerArn=larn, PaginationConfig={"PageSize": 30}) for r in page["Rules"]]
    assert seen == [str(p) for p in range(1, 101)] + ["default"]


# ----------------------------------------------------------------------------- tags


def test_tags_on_every_resource_kind(env: Env) -> None:
    lb = make_lb(env, Tags=[{"Key": "env", "Value": "prod"}])
    tg = make_tg(env, Tags=[{"Key": "svc", "Value": "web"}])
    listener = make_listener(env, lb, tg)
    rule = env.elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"][0]
    arns = [lb["LoadBalancerArn"], tg["TargetGroupArn"], listener["ListenerArn"], rule["RuleArn"]]
    env.elb.add_tags(ResourceArns=arns, Tags=[{"Key": "owner", "Value": "me"}, {"Key": "env", "Value": "dev"}])
    described = {d["ResourceArn"]: d["Tags"] for d in env.elb.describe_tags(ResourceArns=arns)["TagDescriptions"]}
    assert described[lb["LoadBalancerArn"]] == [{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "me"}]
    assert described[tg["TargetGroupArn"]] == [{"Key": "svc", "Value": "web"}, {"Key": "owner", "Value": "me"}, {"Key": "env", "Value": "dev"}]
    assert described[rule["RuleArn"]] == [{"Key": "owner", "Value": "me"}, {"Key": "env", "Value": "dev"}]
    env.elb.remove_tags(ResourceArns=arns, TagKeys=["owner", "absent"])
    described = {d["ResourceArn"]: d["Tags"] for d in env.elb.describe_tags(ResourceArns=arns)["TagDescriptions"]}
    assert described[listener["ListenerArn"]] == [{"Key": "env", "Value": "dev"}]

    missing = {
        "LoadBalancerNotFound": lb["LoadBalancerArn"][:-16] + "0" * 16,
        "TargetGroupNotFound": tg["TargetGroupArn"][:-16] + "0" * 16,
        "ListenerNotFound": listener["ListenerArn"][:-16] + "0" * 16,
        "RuleNotFound": rule["RuleArn"][:-16] + "0" * 16,
    }
    for code, arn in missing.items():
        expect_error(code, env.elb.describe_tags, ResourceArns=[arn])
        expect_error(code, env.elb.add_tags, ResourceArns=[lb["LoadBalancerArn"], arn], Tags=[{"Key": "x", "Value": "y"}])
    assert "x" not in {t["Key"] for t in env.elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]}
    expect_error("ValidationError", env.elb.describe_tags, ResourceArns=[lb["LoadBalancerArn"]] * 21)
    expect_error("ValidationError", env.elb.describe_tags, ResourceArns=["arn:aws:s3:::bucket"])
    expect_error("DuplicateTagKeys", env.elb.add_tags, ResourceArns=[lb["LoadBalancerArn"]],
                 Tags=[{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}])
    expect_error("TooManyTags", env.elb.add_tags, ResourceArns=[lb["LoadBalancerArn"]],
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    env.elb.delete_listener(ListenerArn=listener["ListenerArn"])
    remaining = {r[0] for r in env.store.db.execute("SELECT DISTINCT arn FROM elb_tags")}
    assert remaining == {lb["LoadBalancerArn"], tg["TargetGroupArn"]}


# ----------------------------------------------------------------------------- paging


def test_describe_pages_with_marker_and_page_size(env: Env) -> None:
    for i in range(5):
        make_tg(env, f"tg-{i}")
        env.elb.create_load_balancer(Name=f"lb-{i}", Scheme="internal")
    lb = env.elb.describe_load_balancers(Names=["lb-0"])["LoadBalancers"][0]
    for _ in range(3):
        env.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
                                DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])

    first = env.elb.describe_target_groups(PageSize=2)
    assert [g["TargetGroupName"] for g in first["TargetGroups"]] == ["tg-0", "tg-1"] and first["NextMarker"]
    second = env.elb.describe_target_groups(PageSize=2, Marker=first["NextMarker"])
    third = env.elb.describe_target_groups(PageSize=2, Marker=second["NextMarker"])
    assert [g["TargetGroupName"] for g in second["TargetGroups"] + third["TargetGroups"]] == ["tg-2", "tg-3", "tg-4"]
    assert "NextMarker" not in third

    names = [b["LoadBalancerName"] for page in env.elb.get_paginator("describe_load_balancers").paginate(PaginationConfig={"PageSize": 2}) for b in page["LoadBalancers"]]
    assert names == [f"lb-{i}" for i in range(5)]
    listeners = [l for page in env.elb.get_paginator("describe_listeners").paginate(LoadBalancerArn=lb["LoadBalancerArn"], PaginationConfig={"PageSize": 1}) for l in page["Listeners"]]
    assert len(listeners) == 3
    expect_error("ValidationError", env.elb.describe_target_groups, Marker="garbage")
    expect_error("ValidationError", env.raw.describe_target_groups, PageSize=0)
    expect_error("ValidationError", env.raw.describe_target_groups, PageSize=401)


# ----------------------------------------------------------------------------- the wire


def test_query_protocol_edge(env: Env) -> None:
    status, body = post(env, b"Action=NoSuchThing&Version=2015-12-01", FORM)
    assert status == 400 and "<Code>InvalidAction</Code>" in body and "<Type>Sender</Type>" in body
    status, body = post(env, b"Action=DescribeTrustStores&Version=2015-12-01", FORM)
    assert status == 400 and "<Code>InvalidAction</Code>" in body and "not implemented" in body
    status, body = post(env, b"Version=2015-12-01", FORM)
    assert status == 400 and "<Code>MissingAction</Code>" in body
    # Version may be missing or different
    status, body = post(env, b"Action=DescribeLoadBalancers", FORM)
    assert status == 200 and body.startswith('<DescribeLoadBalancersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">')
    status, body = post(env, b"Action=DescribeLoadBalancers&PageSize=abc", FORM)
    assert status == 400 and "<Code>ValidationError</Code>" in body
    status, body = post(env, b"Action=CreateTargetGroup", FORM)
    assert status == 400 and "<Code>ValidationError</Code>" in body and "name" in body
    # the JSON protocol still routes by X-Amz-Target
    status, body = post(env, b"{}", {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Nope.Op"})
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"


def test_internal_errors_are_query_errors(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from portside.api import elbv2

    def boom(plane: Any, region: str, params: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setitem(elbv2.OPERATIONS, "DescribeLoadBalancers", boom)
    status, body = post(env, b"Action=DescribeLoadBalancers&Version=2015-12-01", FORM)
    assert status == 500 and "<Code>InternalFailure</Code>" in body and "<Type>Receiver</Type>" in body
    assert "bug" not in body


def test_every_error_code_portside_answers_is_in_the_model() -> None:
    codes = set()
    for path in (SRC / "control" / "elbv2").glob("*.py"):
        codes |= set(re.findall(r'fail\(\s*"([A-Za-z]+)"', path.read_text()))
    from portside.core.lb import errors as lb_errors

    codes |= set(re.findall(r'ElbError\(\s*"([A-Za-z]+)"', (SRC / "core" / "lb" / "settings.py").read_text()))
    codes |= {lb_errors.TARGET_GROUP_NOT_FOUND, lb_errors.INVALID_CONFIGURATION_REQUEST, lb_errors.INVALID_LOAD_BALANCER_ACTION}
    assert codes, "no codes found"
    assert codes - {"ValidationError"} <= common.model_codes()


def test_regions_are_separate_and_the_runtime_gets_them_all(env: Env) -> None:
    west = env.client("us-west-2")
    lb_east, tg_east = make_lb(env), make_tg(env)
    make_listener(env, lb_east, tg_east)
    lb_west = west.create_load_balancer(Name="web", Scheme="internal")["LoadBalancers"][0]
    tg_west = west.create_target_group(Name="web-tg", Protocol="HTTP", Port=80)["TargetGroups"][0]
    assert ":us-west-2:" in lb_west["LoadBalancerArn"]
    listener_west = west.create_listener(LoadBalancerArn=lb_west["LoadBalancerArn"], Protocol="HTTP", Port=free_port(),
                                         DefaultActions=forward(tg_west["TargetGroupArn"]))["Listeners"][0]
    assert {l.load_balancer_arn for l in env.runtime.config.listeners} == {lb_east["LoadBalancerArn"], lb_west["LoadBalancerArn"]}
    assert set(env.runtime.config.target_groups) == {tg_east["TargetGroupArn"], tg_west["TargetGroupArn"]}
    expect_error("LoadBalancerNotFound", env.elb.describe_listeners, LoadBalancerArn=lb_west["LoadBalancerArn"])
    # instance targets exist only where this host is a container instance
    expect_error("InvalidTarget", west.register_targets, TargetGroupArn=tg_west["TargetGroupArn"], Targets=[{"Id": env.instance_id}])
    by_region = env.call(lambda: config.build_config(env.plane, "us-west-2"))
    assert [l.arn for l in by_region.listeners] == [listener_west["ListenerArn"]]


# ----------------------------------------------------------------------------- restart


def test_restore_rebinds_stored_listeners_and_reapplies(tmp_path: Path) -> None:
    first = Env(tmp_path)
    lb = make_lb(first)
    tg = make_tg(first)
    kept = make_listener(first, lb, tg)
    lost = make_listener(first, lb, tg)
    first.elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": first.instance_id, "Port": 5000}])
    first.close()  # the listeners' sockets go with the old runtime
    with socket.socket() as holder:  # someone took one port meanwhile
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", lost["Port"]))
        holder.listen(1)
        second = Env(tmp_path)
        try:
            assert second.failed_restore == [lost["ListenerArn"]]
            assert set(second.runtime.bound) == {kept["ListenerArn"]}
            assert second.runtime.drained is not None
            config_ = second.runtime.config
            assert {l.arn for l in config_.listeners} == {kept["ListenerArn"], lost["ListenerArn"]}
            assert [(t.id, t.port) for t in config_.target_groups[tg["TargetGroupArn"]].targets] == [(first.instance_id, 5000)]
            assert second.elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][1]["ListenerArn"] == lost["ListenerArn"]
        finally:
            second.close()


# ----------------------------------------------------------------------------- certificates


def test_import_certificate_stores_a_private_copy(env: Env, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    arn = env.call(lambda: certificates.import_certificate(env.plane, "site", cert, key))
    body = env.call(lambda: certificates.get_certificate(env.plane, REGION, arn))
    for path in (body["_cert_path"], body["_key_path"]):
        assert Path(path).is_relative_to(env.state_dir / "certificates")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(body["_cert_path"]).parent).st_mode) == 0o700
    # importing again under the same name keeps the ARN and replaces the files
    other_cert, other_key = make_cert(tmp_path, "other")
    again = env.call(lambda: certificates.import_certificate(env.plane, "site", other_cert, other_key))
    assert again == arn
    body2 = env.call(lambda: certificates.get_certificate(env.plane, REGION, arn))
    assert Path(body2["_cert_path"]).read_bytes() == other_cert.read_bytes()
    assert not Path(body["_cert_path"]).exists()
    # a mismatched pair is refused and nothing changes
    with pytest.raises(common.ElbError) as exc:
        env.call(lambda: certificates.import_certificate(env.plane, "site", cert, other_key))
    assert exc.value.code == "ValidationError"
    assert env.call(lambda: certificates.get_certificate(env.plane, REGION, arn)) == body2


def test_cert_import_cli_and_portside_action(env: Env, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from portside.cli.main import main

    cert, key = make_cert(tmp_path)
    result = CliRunner().invoke(main, ["cert", "import", "site", str(cert), str(key), "--endpoint", env.endpoint])
    assert result.exit_code == 0, result.output
    arn = result.output.strip()
    assert re.fullmatch(r"arn:aws:acm:us-east-1:000000000000:certificate/[0-9a-f-]{36}", arn)
    lb = make_lb(env)
    tg = make_tg(env)
    env.elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=free_port(),
                            Certificates=[{"CertificateArn": arn}], DefaultActions=forward(tg["TargetGroupArn"]))
    bad = CliRunner().invoke(main, ["cert", "import", "site", str(cert), str(cert), "--endpoint", env.endpoint])
    assert bad.exit_code == 1 and "ValidationError" in bad.output
    status, body = post(env, json.dumps({"Name": "x"}).encode(),
                        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Portside.ImportCertificate"})
    assert status == 400 and json.loads(body)["__type"] == "ValidationError"
    status, body = post(env, b"{}", {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Portside.Nope"})
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"


# ----------------------------------------------------------------------------- with the real proxy


def test_end_to_end_through_the_proxy_runtime(tmp_path: Path) -> None:
    """The same API driving portside's own data plane: health checks, routing, draining, rebinding."""
    runtime_module = pytest.importorskip("portside.proxy.runtime")
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    env = Env(tmp_path, runtime_module.ProxyRuntime)
    try:
        lb = make_lb(env)
        tg = env.raw.create_target_group(Name="be", Protocol="HTTP", Port=backend.server_address[1], TargetType="ip",
                                         HealthCheckIntervalSeconds=2, HealthCheckTimeoutSeconds=1)["TargetGroups"][0]
        arn = tg["TargetGroupArn"]
        port = free_port()
        listener = make_listener(env, lb, tg, port=port)
        env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1"}])
        env.elb.get_waiter("target_in_service").wait(TargetGroupArn=arn, WaiterConfig={"Delay": 1, "MaxAttempts": 15})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=5) as response:
            assert response.read() == b"hello /x"
        env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1"}])
        env.elb.get_waiter("target_deregistered").wait(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1"}],
                                                      WaiterConfig={"Delay": 1, "MaxAttempts": 15})
        new_port = free_port()
        env.elb.modify_listener(ListenerArn=listener["ListenerArn"], Port=new_port)
        env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1"}])
        env.elb.get_waiter("target_in_service").wait(TargetGroupArn=arn, WaiterConfig={"Delay": 1, "MaxAttempts": 15})
        with urllib.request.urlopen(f"http://127.0.0.1:{new_port}/y", timeout=5) as response:
            assert response.read() == b"hello /y"
    finally:
        env.close()
        backend.shutdown()
        backend.server_close()


def test_run_sweeper_outlives_a_round_the_store_refused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database away for a round (replicas on PostgreSQL): the sweeper says so and sweeps at the next."""
    from portside.control.store.database import StoreUnavailable

    tg = make_tg(env)
    arn = tg["TargetGroupArn"]
    env.elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}])
    env.elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": env.instance_id, "Port": 1001}])
    env.clock.now += 301
    real, refused = targets.sweep, []

    def sweep_once_refused(plane: ControlPlane) -> int:
        if not refused:
            refused.append(True)
            raise StoreUnavailable("the store is unavailable; retry")
        return real(plane)

    monkeypatch.setattr(targets, "sweep", sweep_once_refused)
    env.run(_sweeper_runs(env.plane))
    assert refused and env.elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []


def test_a_replica_that_cannot_bind_a_listener_says_so_once_and_binds_it_when_the_port_frees(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Another replica on the same machine holds the port (env's runtime): this one's follow() retries
    at each routing change, logs the refusal once, and binds the listener once the port is free."""
    listener = make_listener(env, make_lb(env), make_tg(env))
    other = ControlPlane(env.plane.config, env.store, env.plane.instance_arn)
    runtime = env.call(FakeRuntime)
    config.attach(other, runtime)
    with caplog.at_level(logging.DEBUG, logger="portside.elbv2"):
        env.call(lambda: config.follow(other))
        env.call(lambda: config.follow(other))
    refusals = [r for r in caplog.records if "cannot be bound" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.ERROR, logging.DEBUG]
    assert other.unbound_listeners == {listener["ListenerArn"]}
    env.call(lambda: env.runtime.close_listener(listener["ListenerArn"]))
    env.call(lambda: config.follow(other))
    assert listener["ListenerArn"] in runtime.bound and other.unbound_listeners == set()
    assert any("is bound now" in r.getMessage() for r in caplog.records)
    env.call(lambda: runtime.close_listener(listener["ListenerArn"]))
