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


# ----------------------------------------------------------------------------- load balancer attributes


ALB_ATTRIBUTES = {
    "access_logs.s3.bucket": "", "access_logs.s3.enabled": "false", "access_logs.s3.prefix": "",
    "client_keep_alive.seconds": "3600",
    "connection_logs.s3.bucket": "", "connection_logs.s3.enabled": "false", "connection_logs.s3.prefix": "",
    "deletion_protection.enabled": "false",
    "health_check_logs.s3.bucket": "", "health_check_logs.s3.enabled": "false", "health_check_logs.s3.prefix": "",
    "idle_timeout.timeout_seconds": "60",
    "ipv6.deny_all_igw_traffic": "true",  # internal; false when internet-facing
    "load_balancing.cross_zone.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "routing.http2.enabled": "true",
    "waf.fail_open.enabled": "false",
    "zonal_shift.config.enabled": "false",
}


def lb_attributes(env: Env, arn: str) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in env.elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}


def test_every_alb_attribute_is_described_with_its_default(env: Env) -> None:
    internal = make_lb(env, "inside")["LoadBalancerArn"]
    assert lb_attributes(env, internal) == ALB_ATTRIBUTES
    public = make_lb(env, "outside", scheme="internet-facing")["LoadBalancerArn"]
    assert lb_attributes(env, public) == {**ALB_ATTRIBUTES, "ipv6.deny_all_igw_traffic": "false"}


def test_writing_an_unimplemented_attributes_default_is_accepted_and_another_value_refused_by_name(env: Env) -> None:
    arn = make_lb(env)["LoadBalancerArn"]
    defaults = [{"Key": k, "Value": v} for k, v in ALB_ATTRIBUTES.items()]
    for batch in (defaults[:12], defaults[12:]):  # at most 20 a call
        out = env.elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=batch)["Attributes"]
        assert {a["Key"]: a["Value"] for a in out} == ALB_ATTRIBUTES
    env.elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "90"}, {"Key": "routing.http2.enabled", "Value": "true"},
        {"Key": "routing.http.xff_header_processing.mode", "Value": "append"}])
    assert lb_attributes(env, arn)["idle_timeout.timeout_seconds"] == "90"
    for key, value in [
        ("routing.http2.enabled", "false"), ("routing.http.xff_header_processing.mode", "remove"),
        ("client_keep_alive.seconds", "60"), ("access_logs.s3.bucket", "my-logs"),
        ("ipv6.deny_all_igw_traffic", "false"), ("load_balancing.cross_zone.enabled", "false"),
        ("dns_record.client_routing_policy", "any_availability_zone"),  # a Network Load Balancer's
    ]:
        message = expect_error("InvalidConfigurationRequest", env.elb.modify_load_balancer_attributes,
                               LoadBalancerArn=arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "30"},
                                                                {"Key": key, "Value": value}])
        assert key in message
    assert lb_attributes(env, arn) == {**ALB_ATTRIBUTES, "idle_timeout.timeout_seconds": "90"}


# ----------------------------------------------------------------------------- listener attributes


LISTENER_ATTRIBUTES = {
    "routing.http.response.server.enabled": "true",
    **{f"routing.http.response.{name}.header_value": "" for name in (
        "access_control_allow_credentials", "access_control_allow_headers", "access_control_allow_methods",
        "access_control_allow_origin", "access_control_expose_headers", "access_control_max_age",
        "content_security_policy", "x_content_type_options", "x_frame_options")},
}
HTTPS_ATTRIBUTES = {
    **{f"routing.http.request.{key}.header_name": name for key, name in {
        "x_amzn_mtls_clientcert": "X-Amzn-Mtls-Clientcert",
        "x_amzn_mtls_clientcert_issuer": "X-Amzn-Mtls-Clientcert-Issuer",
        "x_amzn_mtls_clientcert_leaf": "X-Amzn-Mtls-Clientcert-Leaf",
        "x_amzn_mtls_clientcert_serial_number": "X-Amzn-Mtls-Clientcert-Serial-Number",
        "x_amzn_mtls_clientcert_subject": "X-Amzn-Mtls-Clientcert-Subject",
        "x_amzn_mtls_clientcert_validity": "X-Amzn-Mtls-Clientcert-Validity",
        "x_amzn_tls_cipher_suite": "X-Amzn-Tls-Cipher-Suite",
        "x_amzn_tls_version": "X-Amzn-Tls-Version"}.items()},
    "routing.http.response.strict_transport_security.header_value": "",
}


def listener_attributes(env: Env, arn: str) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in env.elb.describe_listener_attributes(ListenerArn=arn)["Attributes"]}


def bound_server_header(env: Env, listener_arn: str) -> bool:
    [model] = [l for l in env.runtime.config.listeners if l.arn == listener_arn]
    return model.server_header


def test_listener_attributes_by_protocol_and_the_server_header_switch(env: Env, tmp_path: Path) -> None:
    http = make_listener(env, make_lb(env, "plain"), make_tg(env, "plain"))["ListenerArn"]
    assert listener_attributes(env, http) == LISTENER_ATTRIBUTES
    https = https_listener(env, tmp_path)["ListenerArn"]
    assert listener_attributes(env, https) == {**LISTENER_ATTRIBUTES, **HTTPS_ATTRIBUTES}
    assert bound_server_header(env, http) is True

    out = env.elb.modify_listener_attributes(ListenerArn=http, Attributes=[
        {"Key": "routing.http.response.server.enabled", "Value": "false"},
        {"Key": "routing.http.response.x_frame_options.header_value", "Value": ""}])["Attributes"]
    assert {a["Key"]: a["Value"] for a in out}["routing.http.response.server.enabled"] == "false"
    assert bound_server_header(env, http) is False
    # the attribute outlives a ModifyListener
    env.elb.modify_listener(ListenerArn=http, Port=free_port())
    assert listener_attributes(env, http)["routing.http.response.server.enabled"] == "false"
    assert bound_server_header(env, http) is False

    for key, value in [
        ("routing.http.response.server.enabled", "maybe"),
        ("routing.http.response.x_frame_options.header_value", "DENY"),
        ("routing.http.response.strict_transport_security.header_value", ""),  # HTTPS only
        ("routing.http.request.x_amzn_tls_version.header_name", "X-Amzn-Tls-Version"),  # HTTPS only
        ("tcp.idle_timeout.seconds", "350"),  # a Network Load Balancer's
        ("no.such.key", "1"),
    ]:
        message = expect_error("InvalidConfigurationRequest", env.elb.modify_listener_attributes, ListenerArn=http,
                               Attributes=[{"Key": "routing.http.response.server.enabled", "Value": "true"},
                                           {"Key": key, "Value": value}])
        assert key in message
    assert listener_attributes(env, http)["routing.http.response.server.enabled"] == "false"
    env.elb.modify_listener_attributes(ListenerArn=https, Attributes=[
        {"Key": "routing.http.request.x_amzn_tls_version.header_name", "Value": "X-Amzn-Tls-Version"}])
    message = expect_error("InvalidConfigurationRequest", env.elb.modify_listener_attributes, ListenerArn=https,
                           Attributes=[{"Key": "routing.http.request.x_amzn_tls_version.header_name", "Value": "X-Tls"}])
    assert "x_amzn_tls_version" in message
    missing = http.rsplit("/", 1)[0] + "/0000000000000000"
    expect_error("ListenerNotFound", env.elb.describe_listener_attributes, ListenerArn=missing)
    expect_error("ListenerNotFound", env.elb.modify_listener_attributes, ListenerArn=missing,
                 Attributes=[{"Key": "routing.http.response.server.enabled", "Value": "true"}])


# ----------------------------------------------------------------------------- subnets, security groups, IP type


def described(env: Env, arn: str) -> dict[str, Any]:
    return env.elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]


def test_set_subnets_security_groups_and_ip_address_type_are_stored_and_echoed(env: Env) -> None:
    lb = env.elb.create_load_balancer(Name="net", Subnets=["subnet-1", "subnet-2"], SecurityGroups=["sg-1"])
    arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    out = env.elb.set_subnets(LoadBalancerArn=arn, Subnets=["subnet-7", "subnet-8", "subnet-9"])
    zones = [{"ZoneName": f"us-east-1{z}", "SubnetId": f"subnet-{n}", "LoadBalancerAddresses": []}
             for z, n in (("a", 7), ("b", 8), ("c", 9))]
    assert out["AvailabilityZones"] == zones and out["IpAddressType"] == "ipv4"
    assert described(env, arn)["AvailabilityZones"] == zones
    mapped = env.elb.set_subnets(LoadBalancerArn=arn, SubnetMappings=[{"SubnetId": "subnet-3", "PrivateIPv4Address": "10.0.0.5"}])
    assert mapped["AvailabilityZones"] == [{"ZoneName": "us-east-1a", "SubnetId": "subnet-3",
                                            "LoadBalancerAddresses": [{"PrivateIPv4Address": "10.0.0.5"}]}]
    assert env.elb.set_security_groups(LoadBalancerArn=arn, SecurityGroups=["sg-2", "sg-3"])["SecurityGroupIds"] == ["sg-2", "sg-3"]
    assert described(env, arn)["SecurityGroups"] == ["sg-2", "sg-3"]
    assert env.elb.set_ip_address_type(LoadBalancerArn=arn, IpAddressType="ipv4")["IpAddressType"] == "ipv4"
    # creating it again with its current settings is still the idempotent no-op
    again = env.elb.create_load_balancer(Name="net", SubnetMappings=[{"SubnetId": "subnet-3", "PrivateIPv4Address": "10.0.0.5"}],
                                         SecurityGroups=["sg-2", "sg-3"])["LoadBalancers"][0]
    assert again["LoadBalancerArn"] == arn
    assert env.elb.set_security_groups(LoadBalancerArn=arn, SecurityGroups=[])["SecurityGroupIds"] == []
    assert described(env, arn)["SecurityGroups"] == []


def test_network_setting_refusals_name_the_value_and_change_nothing(env: Env) -> None:
    arn = env.elb.create_load_balancer(Name="net", Subnets=["subnet-1"], SecurityGroups=["sg-1"])["LoadBalancers"][0]["LoadBalancerArn"]
    before = described(env, arn)
    for call, params, code, named in [
        (env.elb.set_ip_address_type, {"IpAddressType": "dualstack"}, "InvalidConfigurationRequest", "dualstack"),
        (env.elb.set_ip_address_type, {"IpAddressType": "dualstack-without-public-ipv4"}, "InvalidConfigurationRequest",
         "dualstack-without-public-ipv4"),
        (env.elb.set_subnets, {"Subnets": ["subnet-2"], "IpAddressType": "dualstack"}, "InvalidConfigurationRequest", "dualstack"),
        (env.elb.set_subnets, {"Subnets": ["subnet-2", "subnet-2"]}, "ValidationError", "subnet-2"),
        (env.elb.set_subnets, {"Subnets": ["subnet-2"], "SubnetMappings": [{"SubnetId": "subnet-3"}]}, "ValidationError", "not both"),
        (env.elb.set_subnets, {}, "ValidationError", "subnet"),
        (env.elb.set_subnets, {"SubnetMappings": [{"PrivateIPv4Address": "10.0.0.9"}]}, "ValidationError", "SubnetId"),
        (env.elb.set_subnets, {"Subnets": ["subnet-2"], "EnablePrefixForIpv6SourceNat": "on"}, "InvalidConfigurationRequest",
         "EnablePrefixForIpv6SourceNat"),
        (env.elb.set_security_groups, {"SecurityGroups": ["sg-2", "sg-2"]}, "ValidationError", "sg-2"),
        (env.elb.set_security_groups, {"SecurityGroups": ["sg-2"], "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "on"},
         "InvalidConfigurationRequest", "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"),
    ]:
        message = expect_error(code, call, LoadBalancerArn=arn, **params)
        assert named in message, message
    assert described(env, arn) == before
    missing = arn.rsplit("/", 1)[0] + "/0000000000000000"
    expect_error("LoadBalancerNotFound", env.elb.set_subnets, LoadBalancerArn=missing, Subnets=["subnet-1"])
    expect_error("LoadBalancerNotFound", env.elb.set_security_groups, LoadBalancerArn=missing, SecurityGroups=["sg-1"])
    expect_error("LoadBalancerNotFound", env.elb.set_ip_address_type, LoadBalancerArn=missing, IpAddressType="ipv4")
