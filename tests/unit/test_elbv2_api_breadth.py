"""ELBv2 operations tools call beyond the core set, through the real endpoint with boto3 (the
server and its FakeRuntime are test_elbv2_api's): DescribeSSLPolicies and the listener's policy,
load balancer and listener attributes, SetSubnets / SetSecurityGroups / SetIpAddressType."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portside.control.elbv2 import certificates
from portside.core.lb import ssl_policies
from tests.support.tls import self_signed
from tests.unit.test_elbv2_api import Env, env, expect_error, forward, free_port, make_lb, make_listener, make_tg

__all__ = ["env"]  # the fixture, used by name

TLS12 = "ELBSecurityPolicy-TLS-1-2-2017-01"


def https_listener(env: Env, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cert, key = self_signed(tmp_path, "site.test")
    arn = env.call(lambda: certificates.import_certificate(env.plane, "site", cert, key))
    lb, tg = make_lb(env), make_tg(env)
    return env.elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTPS", Port=free_port(),
        Certificates=[{"CertificateArn": arn}], DefaultActions=forward(tg["TargetGroupArn"]), **extra,
    )["Listeners"][0]


def bound_policy(env: Env, listener_arn: str) -> str:
    [model] = [l for l in env.runtime.config.listeners if l.arn == listener_arn]
    return model.ssl_policy


# ----------------------------------------------------------------------------- SSL policies


def test_describe_ssl_policies_lists_aws_policies_with_protocols_and_ciphers(env: Env) -> None:
    listed = env.elb.describe_ssl_policies()["SslPolicies"]
    assert [p["Name"] for p in listed] == list(ssl_policies.POLICIES)
    by_name = {p["Name"]: p for p in listed}
    default = by_name["ELBSecurityPolicy-2016-08"]
    assert default["SslProtocols"] == ["TLSv1", "TLSv1.1", "TLSv1.2"]
    assert default["Ciphers"][0] == {"Name": "ECDHE-ECDSA-AES128-GCM-SHA256", "Priority": 1}
    assert default["Ciphers"][-1] == {"Name": "AES256-SHA", "Priority": 18}
    assert default["SupportedLoadBalancerTypes"] == ["application", "network"]
    tls13 = by_name["ELBSecurityPolicy-TLS13-1-2-2021-06"]
    assert tls13["SslProtocols"] == ["TLSv1.2", "TLSv1.3"]
    assert [c["Name"] for c in tls13["Ciphers"][:3]] == [
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

    picked = env.elb.describe_ssl_policies(Names=[TLS12, "ELBSecurityPolicy-FS-1-2-Res-2020-10"])["SslPolicies"]
    assert [p["Name"] for p in picked] == [TLS12, "ELBSecurityPolicy-FS-1-2-Res-2020-10"]
    assert picked[0]["SslProtocols"] == ["TLSv1.2"]
    message = expect_error("SSLPolicyNotFound", env.elb.describe_ssl_policies, Names=[TLS12, "Mine", "Yours"])
    assert "'Mine'" in message and "'Yours'" in message and TLS12 not in message
    assert env.elb.describe_ssl_policies(LoadBalancerType="gateway")["SslPolicies"] == []
    assert len(env.elb.describe_ssl_policies(LoadBalancerType="application")["SslPolicies"]) == len(listed)
    first = env.elb.describe_ssl_policies(PageSize=5)
    rest = env.elb.describe_ssl_policies(Marker=first["NextMarker"], PageSize=400)
    assert [p["Name"] for p in first["SslPolicies"] + rest["SslPolicies"]] == list(ssl_policies.POLICIES)


def test_the_listener_policy_reaches_the_proxy_and_unknown_policies_are_refused(env: Env, tmp_path: Path) -> None:
    listener = https_listener(env, tmp_path)
    arn = listener["ListenerArn"]
    assert listener["SslPolicy"] == "ELBSecurityPolicy-2016-08"
    assert bound_policy(env, arn) == "ELBSecurityPolicy-2016-08"
    assert env.elb.modify_listener(ListenerArn=arn, SslPolicy=TLS12)["Listeners"][0]["SslPolicy"] == TLS12
    assert bound_policy(env, arn) == TLS12
    # a name in AWS's style that is no policy is refused by name, and changes nothing
    for name in ("ELBSecurityPolicy-Nope", "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04", "mine"):
        message = expect_error("SSLPolicyNotFound", env.elb.modify_listener, ListenerArn=arn, SslPolicy=name)
        assert name in message
    assert env.elb.describe_listeners(ListenerArns=[arn])["Listeners"][0]["SslPolicy"] == TLS12
    assert bound_policy(env, arn) == TLS12
    lb = env.elb.describe_listeners(ListenerArns=[arn])["Listeners"][0]["LoadBalancerArn"]
    before = env.elb.describe_listeners(LoadBalancerArn=lb)["Listeners"]
    expect_error("SSLPolicyNotFound", env.elb.create_listener, LoadBalancerArn=lb, Protocol="HTTPS", Port=free_port(),
                 Certificates=listener["Certificates"], SslPolicy="ELBSecurityPolicy-Nope",
                 DefaultActions=listener["DefaultActions"])
    assert env.elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] == before
