"""portside.core.lb.settings (target group half): health checks and attributes.

Each case pins AWS's default, range boundary, error code and message; Hypothesis checks that
``attributes_to_params`` / ``attributes_from_params`` round-trip and that any in-range health
check is accepted while the result always satisfies the interval/timeout rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.errors import ELB_ERROR_CODES, ElbError, constraint_message
from portside.core.lb.model import HealthCheck, TargetGroupAttributes
from portside.core.lb.settings import (
    ATTRIBUTE_DEFAULTS,
    attributes_from_params,
    attributes_to_params,
    health_check_from_params,
    modify_health_check,
)
from portside.errors import PortsideError


def refused(fn: Any, *args: Any, **kwargs: Any) -> ElbError:
    with pytest.raises(ElbError) as info:
        fn(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------------
# errors


def test_elb_error_shape() -> None:
    err = ElbError("TargetGroupNotFound", "The specified target group does not exist.")
    assert isinstance(err, PortsideError)
    assert (err.code, err.message, err.status, err.status_hint) == (
        "TargetGroupNotFound",
        "The specified target group does not exist.",
        400,
        400,
    )
    assert ElbError("HealthUnavailable", "x").status == 500
    assert ElbError("PriorRequestNotComplete", "x").status == 429
    assert ElbError("Whatever", "x", status=418).status == 418
    assert "ValidationError" in ELB_ERROR_CODES and "InvalidConfigurationRequest" in ELB_ERROR_CODES
    assert "ElbError('A', 'b', status=400)" == repr(ElbError("A", "b"))


def test_constraint_message_shape() -> None:
    assert constraint_message(
        600, "healthCheckIntervalSeconds", "Member must have value less than or equal to 300"
    ) == (
        "1 validation error detected: Value '600' at 'healthCheckIntervalSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 300"
    )


# ------------------------------------------------------------------------------------------
# health checks


def test_defaults_are_aws_alb_defaults() -> None:
    hc = health_check_from_params({}, "HTTP")
    assert hc == HealthCheck(
        protocol="HTTP",
        port="traffic-port",
        path="/",
        interval_s=30,
        timeout_s=5,
        healthy_threshold=5,
        unhealthy_threshold=2,
        matcher="200",
        enabled=True,
    )


def test_all_members_and_string_values() -> None:
    hc = health_check_from_params(
        {
            "HealthCheckProtocol": "HTTPS",
            "HealthCheckPort": "8081",
            "HealthCheckPath": "/up",
            "HealthCheckIntervalSeconds": "10",
            "HealthCheckTimeoutSeconds": "3",
            "HealthyThresholdCount": "2",
            "UnhealthyThresholdCount": 10,
            "Matcher": {"HttpCode": "200-299,302"},
            "HealthCheckEnabled": "true",
        },
        "HTTP",
    )
    assert hc == HealthCheck("HTTPS", "8081", "/up", 10, 3, 2, 10, "200-299,302", True)
    assert health_check_from_params({"Matcher.HttpCode": "204"}, "HTTP").matcher == "204"


@pytest.mark.parametrize(
    ("key", "member", "value", "constraint"),
    [
        ("HealthCheckIntervalSeconds", "healthCheckIntervalSeconds", 4, "greater than or equal to 5"),
        ("HealthCheckIntervalSeconds", "healthCheckIntervalSeconds", 301, "less than or equal to 300"),
        ("HealthCheckTimeoutSeconds", "healthCheckTimeoutSeconds", 1, "greater than or equal to 2"),
        ("HealthCheckTimeoutSeconds", "healthCheckTimeoutSeconds", 121, "less than or equal to 120"),
        ("HealthyThresholdCount", "healthyThresholdCount", 1, "greater than or equal to 2"),
        ("HealthyThresholdCount", "healthyThresholdCount", 11, "less than or equal to 10"),
        ("UnhealthyThresholdCount", "unhealthyThresholdCount", 1, "greater than or equal to 2"),
        ("UnhealthyThresholdCount", "unhealthyThresholdCount", 11, "less than or equal to 10"),
    ],
)
def test_health_check_ranges(key: str, member: str, value: int, constraint: str) -> None:
    params = {key: value}
    if key == "HealthCheckTimeoutSeconds" and value > 30:
        params["HealthCheckIntervalSeconds"] = 300
    err = refused(health_check_from_params, params, "HTTP")
    assert err.code == "ValidationError"
    assert err.message == constraint_message(value, member, f"Member must have value {constraint}")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HealthCheckIntervalSeconds", 5),
        ("HealthCheckIntervalSeconds", 300),
        ("HealthyThresholdCount", 2),
        ("HealthyThresholdCount", 10),
        ("UnhealthyThresholdCount", 2),
        ("UnhealthyThresholdCount", 10),
    ],
)
def test_health_check_range_boundaries_are_accepted(key: str, value: int) -> None:
    health_check_from_params({key: value}, "HTTP")


def test_non_integer_is_a_validation_error() -> None:
    err = refused(health_check_from_params, {"HealthyThresholdCount": "five"}, "HTTP")
    assert err.code == "ValidationError" and "Member must be an integer" in err.message


@pytest.mark.parametrize(
    ("interval", "timeout"),
    [(10, 10), (10, 11), (5, 5), (30, 120)],
)
def test_timeout_must_be_smaller_than_interval(interval: int, timeout: int) -> None:
    err = refused(
        health_check_from_params,
        {"HealthCheckIntervalSeconds": interval, "HealthCheckTimeoutSeconds": timeout},
        "HTTP",
    )
    assert (err.code, err.message) == (
        "ValidationError",
        "Health check interval must be greater than the timeout.",
    )


def test_interval_5_with_default_timeout_is_accepted_like_aws() -> None:
    assert health_check_from_params({"HealthCheckIntervalSeconds": 5}, "HTTP").timeout_s == 5
    err = refused(health_check_from_params, {"HealthCheckTimeoutSeconds": 31}, "HTTP")
    assert err.message == "Health check interval must be greater than the timeout."


def test_local_min_interval_flag() -> None:
    hc = health_check_from_params({"HealthCheckIntervalSeconds": 1}, "HTTP", min_interval_s=1)
    assert (hc.interval_s, hc.timeout_s) == (1, 1)
    hc = health_check_from_params({"HealthCheckIntervalSeconds": 2}, "HTTP", min_interval_s=1)
    assert (hc.interval_s, hc.timeout_s) == (2, 1)
    hc = health_check_from_params(
        {"HealthCheckIntervalSeconds": 3, "HealthCheckTimeoutSeconds": 1}, "HTTP", min_interval_s=2
    )
    assert (hc.interval_s, hc.timeout_s) == (3, 1)
    err = refused(health_check_from_params, {"HealthCheckIntervalSeconds": 0}, "HTTP", min_interval_s=1)
    assert "greater than or equal to 1" in err.message
    refused(health_check_from_params, {"HealthCheckIntervalSeconds": 4}, "HTTP")  # AWS floor by default


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        (
            {"HealthCheckProtocol": "TCP"},
            "InvalidConfigurationRequest",
            "Health check protocol 'TCP' is not supported for target groups with the 'HTTP' protocol",
        ),
        ({"HealthCheckProtocol": "GOPHER"}, "ValidationError", None),
        (
            {"HealthCheckPort": "0"},
            "ValidationError",
            "Health check port '0' must be 'traffic-port' or a port between 1 and 65535",
        ),
        ({"HealthCheckPort": "65536"}, "ValidationError", None),
        ({"HealthCheckPort": "http"}, "ValidationError", None),
        (
            {"HealthCheckPath": "health"},
            "ValidationError",
            "Health check path 'health' must begin with a '/' character",
        ),
        ({"HealthCheckPath": ""}, "ValidationError", None),
        ({"HealthCheckPath": "/" + "a" * 1024}, "ValidationError", None),
        ({"Matcher": {"HttpCode": ""}}, "ValidationError", "Health check matcher HTTP code cannot be empty"),
        ({"Matcher": {}}, "ValidationError", "Health check matcher HTTP code cannot be empty"),
        (
            {"Matcher": {"HttpCode": "2xx"}},
            "ValidationError",
            "HttpCode must be like 200 | 200-399 | 200,201 ...",
        ),
        (
            {"Matcher": {"HttpCode": "199"}},
            "ValidationError",
            "Health check matcher HTTP code '199' must be within the range 200-499",
        ),
        ({"Matcher": {"HttpCode": "200-500"}}, "ValidationError", None),
        ({"Matcher": {"GrpcCode": "12"}}, "InvalidConfigurationRequest", None),
        (
            {"HealthCheckEnabled": "false"},
            "InvalidConfigurationRequest",
            "Health checks cannot be disabled for target groups with target type 'instance'",
        ),
        ({"HealthCheckEnabled": "maybe"}, "ValidationError", None),
    ],
)
def test_health_check_refusals(params: dict[str, Any], code: str, message: str | None) -> None:
    err = refused(health_check_from_params, params, "HTTP")
    assert err.code == code
    if message is not None:
        assert err.message == message


def test_health_check_port_and_path_edges() -> None:
    assert health_check_from_params({"HealthCheckPort": "traffic-port"}, "HTTP").port == "traffic-port"
    assert health_check_from_params({"HealthCheckPort": 65535}, "HTTP").port == "65535"
    assert health_check_from_params({"HealthCheckPort": "080"}, "HTTP").port == "80"
    assert health_check_from_params({"HealthCheckPath": "/" + "a" * 1023}, "HTTP").path == "/" + "a" * 1023
    assert health_check_from_params({"HealthCheckProtocol": "https"}, "HTTP").protocol == "HTTPS"


def test_modify_is_relative_to_current() -> None:
    current = HealthCheck(path="/up", interval_s=10, timeout_s=4, matcher="200-299")
    assert modify_health_check(current, {}, "HTTP") == current
    new = modify_health_check(current, {"HealthyThresholdCount": 3}, "HTTP")
    assert new == HealthCheck(path="/up", interval_s=10, timeout_s=4, healthy_threshold=3, matcher="200-299")
    err = refused(modify_health_check, current, {"HealthCheckIntervalSeconds": 4}, "HTTP")
    assert err.code == "ValidationError"
    err = refused(
        modify_health_check,
        current,
        {"HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 5},
        "HTTP",
    )
    assert err.message == "Health check interval must be greater than the timeout."
    err = refused(modify_health_check, current, {"HealthCheckTimeoutSeconds": 11}, "HTTP")
    assert err.message == "Health check interval must be greater than the timeout."
    assert modify_health_check(current, {"HealthCheckTimeoutSeconds": 9}, "HTTP").timeout_s == 9


@given(
    st.integers(5, 300),
    st.integers(2, 120),
    st.integers(2, 10),
    st.integers(2, 10),
    st.sampled_from(["200", "200,202", "200-299", "200-499", "404"]),
)
def test_any_in_range_check_is_accepted_iff_timeout_below_interval(
    interval: int, timeout: int, healthy: int, unhealthy: int, matcher: str
) -> None:
    params = {
        "HealthCheckIntervalSeconds": str(interval),
        "HealthCheckTimeoutSeconds": str(timeout),
        "HealthyThresholdCount": str(healthy),
        "UnhealthyThresholdCount": str(unhealthy),
        "Matcher": {"HttpCode": matcher},
    }
    if timeout < interval:
        assert health_check_from_params(params, "HTTP") == HealthCheck(
            interval_s=interval,
            timeout_s=timeout,
            healthy_threshold=healthy,
            unhealthy_threshold=unhealthy,
            matcher=matcher,
        )
    else:
        assert (
            refused(health_check_from_params, params, "HTTP").message
            == "Health check interval must be greater than the timeout."
        )


# ------------------------------------------------------------------------------------------
# attributes

DEFAULTS = TargetGroupAttributes()


def attrs(*pairs: tuple[str, str], current: TargetGroupAttributes = DEFAULTS) -> TargetGroupAttributes:
    return attributes_from_params([{"Key": k, "Value": v} for k, v in pairs], current)


def test_attributes_to_params_is_what_aws_returns_for_an_alb_target_group() -> None:
    assert attributes_to_params(DEFAULTS) == [
        {"Key": "stickiness.enabled", "Value": "false"},
        {"Key": "deregistration_delay.timeout_seconds", "Value": "300"},
        {"Key": "stickiness.app_cookie.cookie_name", "Value": ""},
        {"Key": "stickiness.type", "Value": "lb_cookie"},
        {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "86400"},
        {"Key": "slow_start.duration_seconds", "Value": "0"},
        {"Key": "stickiness.app_cookie.duration_seconds", "Value": "86400"},
        {"Key": "load_balancing.algorithm.type", "Value": "round_robin"},
        {"Key": "load_balancing.algorithm.anomaly_mitigation", "Value": "off"},
        {"Key": "load_balancing.cross_zone.enabled", "Value": "use_load_balancer_configuration"},
        {"Key": "target_group_health.dns_failover.minimum_healthy_targets.count", "Value": "1"},
        {"Key": "target_group_health.dns_failover.minimum_healthy_targets.percentage", "Value": "off"},
        {"Key": "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "Value": "1"},
        {
            "Key": "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
            "Value": "off",
        },
    ]


def test_every_acted_on_attribute() -> None:
    new = attrs(
        ("deregistration_delay.timeout_seconds", "30"),
        ("slow_start.duration_seconds", "60"),
        ("stickiness.enabled", "true"),
        ("stickiness.type", "lb_cookie"),
        ("stickiness.lb_cookie.duration_seconds", "604800"),
    )
    assert new == TargetGroupAttributes(30, 60, "round_robin", True, "lb_cookie", 604800)
    assert (
        attrs(("load_balancing.algorithm.type", "least_outstanding_requests")).algorithm
        == "least_outstanding_requests"
    )
    assert attrs(("stickiness.enabled", "TRUE")).stickiness_enabled is True


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "deregistration_delay.timeout_seconds",
            "3601",
            "'deregistration_delay.timeout_seconds' value '3601' must be between '0-3600' inclusive",
        ),
        (
            "deregistration_delay.timeout_seconds",
            "-1",
            "'deregistration_delay.timeout_seconds' value '-1' must be between '0-3600' inclusive",
        ),
        (
            "deregistration_delay.timeout_seconds",
            "abc",
            "'deregistration_delay.timeout_seconds' value 'abc' must be between '0-3600' inclusive",
        ),
        (
            "slow_start.duration_seconds",
            "29",
            "'slow_start.duration_seconds' value '29' must be between '30-900' inclusive",
        ),
        (
            "slow_start.duration_seconds",
            "901",
            "'slow_start.duration_seconds' value '901' must be between '0-900' inclusive",
        ),
        (
            "stickiness.lb_cookie.duration_seconds",
            "0",
            "'stickiness.lb_cookie.duration_seconds' value '0' must be between '1-604800' inclusive",
        ),
        (
            "stickiness.lb_cookie.duration_seconds",
            "604801",
            "'stickiness.lb_cookie.duration_seconds' value '604801' must be between '1-604800' inclusive",
        ),
        ("stickiness.enabled", "yes", "'stickiness.enabled' value 'yes' must be one of [true, false]"),
        ("stickiness.type", "cookie", "'Stickiness type' must be one of [app_cookie, lb_cookie, source_ip]"),
        (
            "load_balancing.algorithm.type",
            "random",
            "'load_balancing.algorithm.type' value 'random' must be one of [round_robin, least_outstanding_requests, weighted_random]",
        ),
        ("no.such.key", "1", "Target group attribute key 'no.such.key' is not recognized"),
        (
            "proxy_protocol_v2.enabled",
            "false",
            "Target group attribute key 'proxy_protocol_v2.enabled' is not recognized",
        ),
    ],
)
def test_attribute_validation_errors(key: str, value: str, message: str) -> None:
    err = refused(attrs, (key, value))
    assert (err.code, err.message) == ("ValidationError", message)


@pytest.mark.parametrize("value", ["0", "30", "900"])
def test_slow_start_accepts_zero_and_30_to_900(value: str) -> None:
    assert attrs(("slow_start.duration_seconds", value)).slow_start_s == int(value)


def test_bad_key_shape() -> None:
    err = refused(attrs, ("bad key!", "1"))
    assert err.message == constraint_message(
        "bad key!",
        "attributes.1.member.key",
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9._]+$",
    )
    assert "length" in refused(attrs, ("", "1")).message
    assert "length" in refused(attrs, ("a" * 257, "1")).message


@pytest.mark.parametrize(
    ("pairs", "current"),
    [
        (
            (
                ("slow_start.duration_seconds", "30"),
                ("load_balancing.algorithm.type", "least_outstanding_requests"),
            ),
            DEFAULTS,
        ),
        (
            (("slow_start.duration_seconds", "30"),),
            TargetGroupAttributes(algorithm="least_outstanding_requests"),
        ),
        (
            (("load_balancing.algorithm.type", "least_outstanding_requests"),),
            TargetGroupAttributes(slow_start_s=60),
        ),
    ],
)
def test_slow_start_cannot_combine_with_least_outstanding_requests(
    pairs: tuple[tuple[str, str], ...], current: TargetGroupAttributes
) -> None:
    err = refused(attrs, *pairs, current=current)
    assert (err.code, err.message) == (
        "InvalidConfigurationRequest",
        "You cannot enable both slow start mode and least outstanding requests",
    )


def test_switching_algorithm_while_turning_slow_start_off_in_one_request() -> None:
    new = attrs(
        ("slow_start.duration_seconds", "0"),
        ("load_balancing.algorithm.type", "least_outstanding_requests"),
        current=TargetGroupAttributes(slow_start_s=60),
    )
    assert (new.slow_start_s, new.algorithm) == (0, "least_outstanding_requests")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stickiness.type", "app_cookie"),
        ("stickiness.type", "source_ip"),
        ("load_balancing.algorithm.type", "weighted_random"),
        ("stickiness.app_cookie.cookie_name", "SESSION"),
        ("stickiness.app_cookie.duration_seconds", "60"),
        ("load_balancing.algorithm.anomaly_mitigation", "on"),
        ("load_balancing.cross_zone.enabled", "true"),
        ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "2"),
        ("target_group_health.dns_failover.minimum_healthy_targets.percentage", "50"),
    ],
)
def test_settings_portside_would_ignore_are_refused(key: str, value: str) -> None:
    err = refused(attrs, (key, value))
    assert err.code == "InvalidConfigurationRequest"
    assert key in err.message or value in err.message


def test_unused_keys_may_be_set_to_their_defaults() -> None:
    fixed = [(k, v) for k, v in ATTRIBUTE_DEFAULTS]
    assert attrs(*fixed) == DEFAULTS


def test_a_refused_request_changes_nothing() -> None:
    current = TargetGroupAttributes(deregistration_delay_s=10)
    refused(attrs, ("deregistration_delay.timeout_seconds", "20"), ("bogus", "1"), current=current)
    assert current.deregistration_delay_s == 10


attribute_values = st.builds(
    TargetGroupAttributes,
    deregistration_delay_s=st.integers(0, 3600),
    slow_start_s=st.one_of(st.just(0), st.integers(30, 900)),
    algorithm=st.sampled_from(["round_robin", "least_outstanding_requests"]),
    stickiness_enabled=st.booleans(),
    stickiness_type=st.just("lb_cookie"),
    stickiness_duration_s=st.integers(1, 604800),
).filter(lambda a: not (a.slow_start_s and a.algorithm == "least_outstanding_requests"))


@given(attribute_values)
def test_describe_then_modify_round_trips(value: TargetGroupAttributes) -> None:
    params = attributes_to_params(value)
    assert [p["Key"] for p in params] == [k for k, _ in ATTRIBUTE_DEFAULTS]
    assert attributes_from_params(params, DEFAULTS) == value
