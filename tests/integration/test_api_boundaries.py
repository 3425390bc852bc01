"""The API's trust boundary through a real server process: signatures, Host, Origin, loops, TLS, files.

A web page, a neighbour or a listener must not become root through the API: every request is
signed (any key on loopback unless --auth always), its Host names the API and its Origin, if
any, is the API's own; no listener or target points back into portside; strings that are not
Unicode are refused at the edge; HTTPS with a private CA works with boto3; the state directory
and database are owner-only whatever the umask.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess, free_port
from tests.support.signing import (
    AUTOSCALING_TARGET,
    ECS_TARGET,
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    send,
    sign,
    signed_post,
)
from tests.support.tls import make_server_pki

pytestmark = pytest.mark.docker

API_NAME = "portside.test"
EVIL_FORM = urlencode(
    {"Action": "CreateTargetGroup", "Version": "2015-12-01", "Name": "evil", "Protocol": "HTTP", "Port": "80",
     "VpcId": "vpc-1", "TargetType": "ip"}
).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("boundary"), "--api-host", API_NAME)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_server_containers(docker_client, process)  # none is started here; a failure must not leave one either


def _error(reply_body: str) -> tuple[str, str]:
    """(code, message) from a JSON or XML error answer."""
    if reply_body.lstrip().startswith("{"):
        payload = json.loads(reply_body)
        return payload["__type"], payload["message"]
    code = re.search(r"<Code>(.*?)</Code>", reply_body)
    message = re.search(r"<Message>(.*?)</Message>", reply_body, re.S)
    return (code.group(1) if code else ""), (message.group(1) if message else "")


def _target_group_names(server: PortsideProcess) -> list[str]:
    return [g["TargetGroupName"] for g in server.client("elbv2").describe_target_groups()["TargetGroups"]]


# -- a web page: cross-site form posts and DNS rebinding


def test_a_browser_form_post_from_another_site_is_refused_and_changes_nothing(server: PortsideProcess) -> None:
    """What a page on evil.example can make a browser send: an unsigned form POST, rebound or not."""
    rebound = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example",
               "Host": f"rebind.evil.example:{server.port}"}
    cross_site = {**rebound, "Host": f"127.0.0.1:{server.port}"}
    for headers in (rebound, cross_site):
        reply = send(server.endpoint, EVIL_FORM, headers)
        assert reply.status == 403, reply
        assert _error(reply.body)[0] == "AccessDenied"
    assert "evil" not in _target_group_names(server)


def test_unsigned_requests_are_refused_on_loopback(server: PortsideProcess) -> None:
    host = {"Host": f"127.0.0.1:{server.port}"}
    query = send(server.endpoint, EVIL_FORM, {**host, "Content-Type": FORM_CONTENT_TYPE})
    assert (query.status, _error(query.body)) == (403, ("MissingAuthenticationToken", "Request is missing Authentication Token"))
    ecs = send(server.endpoint, b'{"clusterName": "unsigned"}',
               {**host, "Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": ECS_TARGET + "CreateCluster"})
    assert (ecs.status, _error(ecs.body)[0]) == (403, "MissingAuthenticationTokenException")
    assert "evil" not in _target_group_names(server)
    assert not any("unsigned" in arn for arn in server.client().list_clusters()["clusterArns"])


def test_health_and_metrics_stay_open_without_a_signature(server: PortsideProcess) -> None:
    for path in ("/healthz", "/metrics"):
        with urllib.request.urlopen(server.endpoint + path, timeout=10) as reply:
            assert reply.status == 200


@pytest.mark.parametrize("host", ["rebind.evil.example", "localhost.evil.example", "10.11.12.13"])
def test_a_signed_request_naming_another_host_is_refused(server: PortsideProcess, host: str) -> None:
    """DNS rebinding: the browser dials 127.0.0.1 but names the attacker's host; a signature does not help."""
    headers = sign(server.endpoint, EVIL_FORM, {"Content-Type": FORM_CONTENT_TYPE, "Host": f"{host}:{server.port}"})
    reply = send(server.endpoint, EVIL_FORM, headers)
    assert reply.status == 403
    code, message = _error(reply.body)
    assert code == "AccessDenied" and f"Host header '{host}:{server.port}'" in message and "--api-host" in message
    assert "evil" not in _target_group_names(server)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", API_NAME])
def test_the_api_answers_to_its_own_names(server: PortsideProcess, host: str) -> None:
    headers = {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": ECS_TARGET + "ListClusters",
               "Host": f"{host}:{server.port}"}
    reply = signed_post(server.endpoint, b"{}", headers)
    assert reply.status == 200, reply


def test_a_signed_request_from_another_origin_is_refused(server: PortsideProcess) -> None:
    body = b'{"clusterName": "from-a-page"}'
    base = {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": ECS_TARGET + "CreateCluster"}
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port}"):
        reply = send(server.endpoint, body, {**sign(server.endpoint, body, base), "Origin": origin})
        assert reply.status == 403
        code, message = _error(reply.body)
        assert code == "AccessDeniedException" and f"Origin '{origin}'" in message
    assert not any("from-a-page" in arn for arn in server.client().list_clusters()["clusterArns"])
    own = send(server.endpoint, body, {**sign(server.endpoint, body, base), "Origin": server.endpoint})
    assert own.status == 200, own


# -- signatures: the service scope and X-Amz-Target


@pytest.mark.parametrize(
    ("target", "signed_for", "expected", "code"),
    [
        (ECS_TARGET + "ListClusters", "elasticloadbalancing", "ecs", "InvalidSignatureException"),
        (AUTOSCALING_TARGET + "DescribeScalableTargets", "ecs", "application-autoscaling", "InvalidSignatureException"),
        ("Portside.ImportCertificate", "ecs", "elasticloadbalancing", "InvalidSignatureException"),
        (None, "ecs", "elasticloadbalancing", "SignatureDoesNotMatch"),
    ],
)
def test_the_signature_must_be_scoped_to_the_api_called(
    server: PortsideProcess, target: str | None, signed_for: str, expected: str, code: str
) -> None:
    if target is None:
        body, headers = b"Action=DescribeLoadBalancers&Version=2015-12-01", {"Content-Type": FORM_CONTENT_TYPE}
    else:
        body = b'{"ServiceNamespace": "ecs"}' if target.startswith(AUTOSCALING_TARGET) else b"{}"
        headers = {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": target}
    reply = signed_post(server.endpoint, body, headers, service=signed_for)
    assert reply.status == 403
    assert _error(reply.body)[0] == code
    assert f"scoped to correct service: '{expected}'" in _error(reply.body)[1]
    scoped = signed_post(server.endpoint, body, headers, service=expected)
    # Past the signature: answered by the operation (ImportCertificate refuses an empty body).
    assert scoped.status == (400 if target == "Portside.ImportCertificate" else 200), scoped


def test_x_amz_target_must_be_signed(server: PortsideProcess) -> None:
    """A signature over the body alone must not be replayable against another operation."""
    body = b'{"clusterName": "replayed"}'
    headers = sign(server.endpoint, body, {"Content-Type": JSON_CONTENT_TYPE}, service="ecs")
    reply = send(server.endpoint, body, {**headers, "X-Amz-Target": ECS_TARGET + "CreateCluster"})
    assert reply.status == 403
    assert _error(reply.body) == (
        "InvalidSignatureException", "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
    )
    assert not any("replayed" in arn for arn in server.client().list_clusters()["clusterArns"])


def test_auth_always_accepts_only_known_keys_on_loopback(tmp_path: Path, docker_client: Any) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIDKNOWN\naws_secret_access_key = known/secret\n")
    process = PortsideProcess(tmp_path / "state", "--auth", "always", "--credentials", str(credentials))
    try:
        process.start()
        with pytest.raises(ClientError) as refused:
            process.client().list_clusters()  # AKIDTEST: any key, which loopback accepts by default
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        known = process.client(aws_access_key_id="AKIDKNOWN", aws_secret_access_key="known/secret")
        assert "clusterArns" in known.list_clusters()
        wrong = process.client(aws_access_key_id="AKIDKNOWN", aws_secret_access_key="not-it")
        with pytest.raises(ClientError) as mismatch:
            wrong.list_clusters()
        assert mismatch.value.response["Error"]["Code"] == "InvalidSignatureException"
        # The pre-signed form: the signature in the query string, a value that needs encoding in it.
        presigned = _presigned_url(process.endpoint, "AKIDKNOWN", "known/secret")
        accepted = send(presigned, b"", {"Content-Type": FORM_CONTENT_TYPE}, path=presigned[len(process.endpoint):])
        assert (accepted.status, _error(accepted.body)[0]) == (400, "TargetGroupNotFound")  # past the signature
        assert "'[a b]'" in _error(accepted.body)[1]
        forged = presigned.replace("Names.member.1=a%20b", "Names.member.1=c")
        reply = send(forged, b"", {"Content-Type": FORM_CONTENT_TYPE}, path=forged[len(process.endpoint):])
        assert (reply.status, _error(reply.body)[0]) == (403, "SignatureDoesNotMatch")
    finally:
        process.stop()


def _presigned_url(endpoint: str, key: str, secret: str) -> str:
    request = AWSRequest(method="POST", url=endpoint + "/", params={
        "Action": "DescribeTargetGroups", "Version": "2015-12-01", "Names.member.1": "a b",
    })
    SigV4QueryAuth(Credentials(key, secret), "elasticloadbalancing", "us-east-1", expires=60).add_auth(request)
    return str(request.prepare().url)


def test_auth_always_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path), "--auth", "always"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--auth always" in result.stderr and "--credentials" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_api_host_with_a_port_refuses_to_start(tmp_path: Path) -> None:
    """Ports in Host are not compared, so a name with one would never match: refused, not ignored."""
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path), "--api-host", "portside.example.com:443"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--api-host must be a host name or IP address" in result.stderr and "'portside.example.com:443'" in result.stderr
    assert "Traceback" not in result.stderr


# -- a listener: no target or listener may point back into portside


def test_targets_and_listeners_that_loop_into_portside_are_refused(server: PortsideProcess) -> None:
    elb = server.client("elbv2")
    ip_group = elb.create_target_group(Name="loop-ip", Protocol="HTTP", Port=80, VpcId="vpc-1", TargetType="ip")
    ip_arn = ip_group["TargetGroups"][0]["TargetGroupArn"]
    lb = elb.create_load_balancer(Name="loop-lb", Scheme="internal")["LoadBalancers"][0]
    listener_port = free_port()
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=listener_port,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
    )["Listeners"][0]
    try:
        for target, port, says in [
            ("127.0.0.1", server.port, f"the portside API's own address and port (127.0.0.1:{server.port})"),
            ("127.0.0.2", server.port, "portside API"),  # all of 127/8 is this host
            ("0.0.0.0", server.port, "portside API"),
            ("127.0.0.1", listener_port, f"portside's own listener {listener['ListenerArn']}"),
        ]:
            with pytest.raises(ClientError) as refused:
                elb.register_targets(TargetGroupArn=ip_arn, Targets=[{"Id": "127.0.0.1", "Port": 9}, {"Id": target, "Port": port}])
            assert refused.value.response["Error"]["Code"] == "ValidationError"
            assert f"Target {target} port {port}" in refused.value.response["Error"]["Message"]
            assert says in refused.value.response["Error"]["Message"]
        assert elb.describe_target_health(TargetGroupArn=ip_arn)["TargetHealthDescriptions"] == []  # nothing half-applied

        instance_arn = elb.create_target_group(Name="loop-instance", Protocol="HTTP", Port=80, VpcId="vpc-1")["TargetGroups"][0]["TargetGroupArn"]
        instance_id = server.client().describe_container_instances(
            containerInstances=server.client().list_container_instances()["containerInstanceArns"]
        )["containerInstances"][0]["ec2InstanceId"]
        with pytest.raises(ClientError) as instance_refused:
            elb.register_targets(TargetGroupArn=instance_arn, Targets=[{"Id": instance_id, "Port": server.port}])
        assert f"Target {instance_id} (127.0.0.1) port {server.port}" in instance_refused.value.response["Error"]["Message"]

        with pytest.raises(ClientError) as on_api_port:
            elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=server.port,
                                DefaultActions=[{"Type": "forward", "TargetGroupArn": ip_arn}])
        assert on_api_port.value.response["Error"]["Code"] == "ValidationError"
        assert f"Port {server.port} is the portside API's own port" in on_api_port.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as moved:
            elb.modify_listener(ListenerArn=listener["ListenerArn"], Port=server.port)
        assert moved.value.response["Error"]["Code"] == "ValidationError"
        assert elb.describe_listeners(ListenerArns=[listener["ListenerArn"]])["Listeners"][0]["Port"] == listener_port

        # A target on this host first, then a listener on its port: the listener would forward to itself.
        free = free_port()
        elb.register_targets(TargetGroupArn=ip_arn, Targets=[{"Id": "127.0.0.1", "Port": free}])
        with pytest.raises(ClientError) as onto_target:
            elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=free,
                                DefaultActions=[{"Type": "forward", "TargetGroupArn": ip_arn}])
        assert f"Port {free} is the port of target 127.0.0.1" in onto_target.value.response["Error"]["Message"]
        # Another host's address at the same port is an ordinary target.
        elb.register_targets(TargetGroupArn=ip_arn, Targets=[{"Id": "192.0.2.7", "Port": server.port}])
    finally:
        elb.delete_listener(ListenerArn=listener["ListenerArn"])
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])


# -- strings that are not Unicode


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        (ECS_TARGET + "CreateCluster", b'{"clusterName": "bad\\ud800"}', "clusterName"),
        (ECS_TARGET + "RegisterTaskDefinition",
         b'{"family": "f", "containerDefinitions": [{"name": "a", "image": "i", "memory": 8,'
         b' "environment": [{"name": "X", "value": "\\udfff"}]}]}', "containerDefinitions[0].environment[0].value"),
        (ECS_TARGET + "CreateCluster", b'{"clusterName": "c", "tags": [{"key": "\\ud83d", "value": "v"}]}', "tags[0].key"),
        (AUTOSCALING_TARGET + "DescribeScalableTargets", b'{"ServiceNamespace": "ecs", "ResourceIds": ["\\udc00"]}',
         "ResourceIds[0]"),
        ("Portside.ImportCertificate", b'{"Name": "\\ud800", "Certificate": "", "PrivateKey": ""}', "Name"),
        (ECS_TARGET + "ListClusters", b'{"\\ud800": 1}', "a member name in the body"),
    ],
)
def test_lone_surrogates_are_a_serialization_error(server: PortsideProcess, target: str, body: bytes, field: str) -> None:
    reply = signed_post(server.endpoint, body, {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": target})
    assert reply.status == 400, reply
    code, message = _error(reply.body)
    assert code == "SerializationException"
    assert message.startswith(field) and "not a valid Unicode string" in message


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        (ECS_TARGET + "CreateCluster", b'{"clusterName": "bad\\u0000"}', "clusterName"),
        (ECS_TARGET + "DescribeClusters", b'{"clusters": ["\\u0000"]}', "clusters[0]"),
    ],
)
def test_nul_characters_are_a_serialization_error(server: PortsideProcess, target: str, body: bytes, field: str) -> None:
    """No store holds NUL in a name or an id (PostgreSQL refuses it in text): refused at the edge, by name."""
    reply = signed_post(server.endpoint, body, {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": target})
    assert reply.status == 400, reply
    code, message = _error(reply.body)
    assert code == "SerializationException" and message.startswith(field) and "NUL character" in message


def test_a_nul_character_in_a_query_parameter_is_refused_by_name(server: PortsideProcess) -> None:
    body = b"Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=%00"
    reply = signed_post(server.endpoint, body, {"Content-Type": FORM_CONTENT_TYPE})
    assert reply.status == 400, reply
    code, message = _error(reply.body)
    assert "NUL character" in message, (code, message)


def test_query_strings_that_are_not_utf8_are_refused(server: PortsideProcess) -> None:
    body = b"Action=CreateTargetGroup&Version=2015-12-01&Name=%ED%A0%80&Protocol=HTTP&Port=80&VpcId=v"
    reply = signed_post(server.endpoint, body, {"Content-Type": FORM_CONTENT_TYPE})
    assert reply.status == 400, reply
    code, message = _error(reply.body)
    assert code == "MalformedQueryString" and "not UTF-8" in message
    assert "\ufffd" not in "".join(_target_group_names(server))


# -- HTTPS, and the files a server keeps


def test_the_api_over_https_with_a_private_ca(tmp_path: Path, docker_client: Any) -> None:
    pki = make_server_pki(tmp_path / "pki")
    process = PortsideProcess(tmp_path / "state", "--api-tls", str(pki.cert), str(pki.key), ca_file=pki.ca)
    try:
        process.start()
        assert process.endpoint.startswith("https://")
        ecs = process.client()  # verify= the CA file
        assert ecs.create_cluster(clusterName="over-tls")["cluster"]["clusterName"] == "over-tls"
        assert process.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
        untrusting = process.client(verify=True)  # the system CAs do not know ours
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|SSL"):
            untrusting.list_clusters()
        # The CLI finds the CA the way boto3 and the AWS CLI do: AWS_CA_BUNDLE.
        cli = subprocess.run(
            [sys.executable, "-m", "portside.cli.main", "ps", "--endpoint", process.endpoint],
            capture_output=True, text=True, timeout=60, env={**_environ(), "AWS_CA_BUNDLE": str(pki.ca)},
        )
        assert cli.returncode == 0, cli.stderr
    finally:
        process.stop()


def test_api_tls_files_that_do_not_load_stop_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("not a certificate\n")
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path / "state"), "--api-tls", str(bad), str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert f"--api-tls {bad} {bad}" in result.stderr and "Traceback" not in result.stderr


def test_state_directory_and_database_are_private_whatever_the_umask(tmp_path: Path, docker_client: Any) -> None:
    state = tmp_path / "run" / "state"  # created by the server itself, under umask 0
    # --store names SQLite's default place, so the suite's PostgreSQL pass checks the file too.
    process = PortsideProcess(tmp_path / "run", "--state-dir", str(state), "--store", f"sqlite:{state}/portside.db",
                              umask=0)
    try:
        process.start()
        assert process.client().create_cluster(clusterName="private")["cluster"]["status"] == "ACTIVE"  # a write: WAL exists
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        files = sorted(state.glob("portside.db*"))
        assert {f.name for f in files} >= {"portside.db", "portside.db-wal"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        process.stop()


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def test_an_existing_state_directory_others_can_read_is_tightened(tmp_path: Path, docker_client: Any) -> None:
    state = tmp_path / "existing"
    state.mkdir()
    state.chmod(0o755)
    process = PortsideProcess(state)
    try:
        process.start()
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert f"state directory {state} had mode 755; setting it to 700" in process.log()
    finally:
        process.stop()
