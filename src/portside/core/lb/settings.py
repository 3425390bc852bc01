"""ELBv2 API parameters -> validated model values, with AWS's defaults, ranges and errors.

Theory of operation
-------------------
The API layer hands over request parameters already parsed from the query protocol into
botocore's shapes (``{"Matcher": {"HttpCode": "200"}}``, lists of ``{"Key", "Value"}`` …;
scalars may still be strings). Each function here validates one concept and returns an
immutable model value (``model.HealthCheck``, ``TargetGroupAttributes``, ``Rule``) or raises
``ElbError`` with the AWS code and message. Nothing is stored; modify operations take the
current value and return the new one, so a refused request changes nothing.

Principle: never accept a setting the proxy would ignore. Attributes that AWS returns but we
do not act on are reported with AWS's defaults and may only be "set" to those defaults
(Terraform and CloudFormation resend every attribute); any other value is refused with
``InvalidConfigurationRequest`` naming the key. The same holds for ``app_cookie`` stickiness,
``weighted_random``, gRPC matchers, ``RegexValues`` conditions and authentication actions.

Listener rule ``Conditions`` and ``Actions`` are converted in ``rule_settings``; the scalar
helpers both use are in ``params``.

Where the messages come from
----------------------------
* Seen from real AWS in public issue threads: "Health check interval must be greater than
  the timeout." (aws-cdk#3703, aws-load-balancer-controller#2951); "You cannot enable both
  slow start mode and least outstanding requests" (code-dot-org#51253); "Health check matcher
  HTTP code cannot be empty" (azavea/terraform-aws-ecs-web-service#9); "A rule can only have
  '5' condition values" (cfn-lint#3833, aws-cdk#10065); "The redirect configuration is not
  valid because it creates a loop." and "For actions of type 'redirect', you must specify the
  following fields: 'RedirectConfig'" (aws-load-balancer-controller#487, terraform#32620);
  "'<key>' value '<v>' must be between '<lo>-<hi>' inclusive" (seen for the stickiness
  duration); the "1 validation error detected: …" constraint sentence (cfn-lint#807).
* moto's elbv2 backend (5.x ``models.py``), AWS's reference double: the condition messages
  ("The '<field>' value is too long; the limit is '<n>'", "A condition value must be
  specified", "The 'Values' field is not compatible with …", …), "Target group attribute key
  '<key>' is not recognized", "'Stickiness type' must be one of […]", the fixed-response
  ContentType message and "HttpCode must be like 200 | 200-399 | 200,201 ...".
* Everything else (portside refusals, host/path character rules, CIDR and forward-config
  checks) is worded by us in the same style from the botocore 1.43 shape documentation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from portside.core.lb.errors import (
    constraint_message,
    invalid_configuration,
    validation_error,
)
from portside.core.lb.health import parse_matcher
from portside.core.lb.model import (
    DEFAULT_HEALTH_CHECK_TIMEOUT_S,
    HealthCheck,
    TargetGroupAttributes,
)
from portside.core.lb.params import bool_param, given, int_param

__all__ = [
    "ATTRIBUTE_DEFAULTS",
    "AWS_MIN_INTERVAL_S",
    "attributes_from_params",
    "attributes_to_params",
    "health_check_from_params",
    "modify_health_check",
]

AWS_MIN_INTERVAL_S = 5
PROTOCOLS = ("HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE", "QUIC", "TCP_QUIC")

# DescribeTargetGroupAttributes for an ALB HTTP/HTTPS instance or ip target group, in AWS's
# order, with AWS's defaults. The six keys in _ACTED_ON drive the proxy; the rest are fixed.
ATTRIBUTE_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("stickiness.enabled", "false"),
    ("deregistration_delay.timeout_seconds", "300"),
    ("stickiness.app_cookie.cookie_name", ""),
    ("stickiness.type", "lb_cookie"),
    ("stickiness.lb_cookie.duration_seconds", "86400"),
    ("slow_start.duration_seconds", "0"),
    ("stickiness.app_cookie.duration_seconds", "86400"),
    ("load_balancing.algorithm.type", "round_robin"),
    ("load_balancing.algorithm.anomaly_mitigation", "off"),
    ("load_balancing.cross_zone.enabled", "use_load_balancer_configuration"),
    ("target_group_health.dns_failover.minimum_healthy_targets.count", "1"),
    ("target_group_health.dns_failover.minimum_healthy_targets.percentage", "off"),
    ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "1"),
    ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "off"),
)
_ACTED_ON = frozenset(
    {
        "stickiness.enabled",
        "deregistration_delay.timeout_seconds",
        "stickiness.type",
        "stickiness.lb_cookie.duration_seconds",
        "slow_start.duration_seconds",
        "load_balancing.algorithm.type",
    }
)
_FIXED = {k: v for k, v in ATTRIBUTE_DEFAULTS if k not in _ACTED_ON}

_INTERVAL_TIMEOUT = "Health check interval must be greater than the timeout."
_SLOW_START_LOR = "You cannot enable both slow start mode and least outstanding requests"


# ---------------------------------------------------------------------------------------------
# Health checks (CreateTargetGroup / ModifyTargetGroup)


def health_check_from_params(
    params: Mapping[str, Any],
    protocol: str,
    min_interval_s: int = AWS_MIN_INTERVAL_S,
    target_type: str = "instance",
) -> HealthCheck:
    """The health check of a new target group (CreateTargetGroup).

    :param params: the request's ``HealthCheck*``, ``*ThresholdCount`` and ``Matcher`` members.
    :param protocol: the target group's protocol (HTTP | HTTPS).
    :param min_interval_s: the smallest HealthCheckIntervalSeconds accepted (AWS: 5; a server
        flag may lower it for local use; the timeout floor is then ``max(1, min(2, floor - 1))``
        and an omitted timeout defaults to ``interval - 1`` (at least 1) for intervals below 5).
    Returns: a ``HealthCheck`` with AWS's defaults for whatever was not given.
    Raises: ElbError ValidationError / InvalidConfigurationRequest.
    """
    return _health_check(HealthCheck(), params, protocol, min_interval_s, target_type, creating=True)


def modify_health_check(
    current: HealthCheck,
    params: Mapping[str, Any],
    protocol: str,
    min_interval_s: int = AWS_MIN_INTERVAL_S,
    target_type: str = "instance",
) -> HealthCheck:
    """Apply ModifyTargetGroup's health check members to the current settings.

    Returns: the new ``HealthCheck``; members not given keep their current values.
    Raises: ElbError ValidationError / InvalidConfigurationRequest (nothing is changed).
    """
    return _health_check(current, params, protocol, min_interval_s, target_type, creating=False)


def _health_check(
    base: HealthCheck,
    params: Mapping[str, Any],
    protocol: str,
    min_interval_s: int,
    target_type: str,
    creating: bool,
) -> HealthCheck:
    changes: dict[str, Any] = {}
    if given(params, "HealthCheckProtocol"):
        hc_protocol = str(params["HealthCheckProtocol"]).upper()
        if hc_protocol not in PROTOCOLS:
            raise validation_error(
                constraint_message(
                    params["HealthCheckProtocol"],
                    "healthCheckProtocol",
                    f"Member must satisfy enum value set: [{', '.join(PROTOCOLS)}]",
                )
            )
        if hc_protocol not in ("HTTP", "HTTPS"):
            raise invalid_configuration(
                f"Health check protocol '{hc_protocol}' is not supported for target groups "
                f"with the '{protocol}' protocol"
            )
        changes["protocol"] = hc_protocol
    if given(params, "HealthCheckPort"):
        port = str(params["HealthCheckPort"]).strip()
        if port != "traffic-port":
            if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                raise validation_error(
                    f"Health check port '{port}' must be 'traffic-port' or a port between 1 and 65535"
                )
            port = str(int(port))
        changes["port"] = port
    if given(params, "HealthCheckPath"):
        path = str(params["HealthCheckPath"])
        if not 1 <= len(path) <= 1024:
            bound = "greater than or equal to 1" if not path else "less than or equal to 1024"
            raise validation_error(
                constraint_message(path, "healthCheckPath", f"Member must have length {bound}")
            )
        _check_path_characters(path)
        if not path.startswith("/"):
            raise validation_error(f"Health check path '{path}' must begin with a '/' character")
        changes["path"] = path
    interval_given = given(params, "HealthCheckIntervalSeconds")
    timeout_given = given(params, "HealthCheckTimeoutSeconds")
    if interval_given:
        changes["interval_s"] = int_param(
            params["HealthCheckIntervalSeconds"], "healthCheckIntervalSeconds", min_interval_s, 300
        )
    if timeout_given:
        changes["timeout_s"] = int_param(
            params["HealthCheckTimeoutSeconds"],
            "healthCheckTimeoutSeconds",
            _timeout_floor(min_interval_s),
            120,
        )
    elif creating and interval_given and changes["interval_s"] < AWS_MIN_INTERVAL_S:
        # local mode only (AWS's floor is 5): keep the default timeout below a short interval
        changes["timeout_s"] = max(1, min(DEFAULT_HEALTH_CHECK_TIMEOUT_S, changes["interval_s"] - 1))
    for key, field in (
        ("HealthyThresholdCount", "healthy_threshold"),
        ("UnhealthyThresholdCount", "unhealthy_threshold"),
    ):
        if given(params, key):
            changes[field] = int_param(params[key], key[0].lower() + key[1:], 2, 10)
    matcher = params.get("Matcher")
    http_code = params.get("Matcher.HttpCode")
    if isinstance(matcher, Mapping):
        if matcher.get("GrpcCode") is not None:
            raise invalid_configuration("Matcher.GrpcCode is not supported: portside target groups use HTTP1")
        http_code = matcher.get("HttpCode", http_code)
    if http_code is not None or isinstance(matcher, Mapping):
        changes["matcher"] = _matcher(http_code)
    if given(params, "HealthCheckEnabled") and not bool_param(params["HealthCheckEnabled"], "healthCheckEnabled"):
        raise invalid_configuration(
            f"Health checks cannot be disabled for target groups with target type '{target_type}'"
        )
    result = replace(base, **changes)
    both_given = interval_given and timeout_given
    if result.timeout_s > result.interval_s or (both_given and result.timeout_s == result.interval_s):
        raise validation_error(_INTERVAL_TIMEOUT)
    return result


def _check_path_characters(path: str) -> None:
    """A health check path goes into the probe's request line as it is: visible ASCII only.

    A space, CR, LF or other control character would split or end the request line (and could
    smuggle header fields into every probe); non-ASCII has no defined form on the wire.
    """
    for index, char in enumerate(path):
        if not "!" <= char <= "~":
            shown = path.encode("unicode_escape").decode("ascii")
            raise validation_error(
                constraint_message(
                    shown,
                    "healthCheckPath",
                    "Member must contain only visible ASCII characters (no spaces, control characters or "
                    f"non-ASCII); found U+{ord(char):04X} at index {index}",
                )
            )


def _timeout_floor(min_interval_s: int) -> int:
    """AWS's 2 s, lowered with a local interval floor so that a timeout below it still exists."""
    return max(1, min(2, min_interval_s - 1))


def _matcher(http_code: Any) -> str:
    text = "" if http_code is None else str(http_code).strip()
    if not text:
        raise validation_error("Health check matcher HTTP code cannot be empty")
    try:
        ranges = parse_matcher(text)
    except ValueError:
        raise validation_error("HttpCode must be like 200 | 200-399 | 200,201 ...") from None
    for low, high in ranges:
        if low < 200 or high > 499:
            raise validation_error(
                f"Health check matcher HTTP code '{text}' must be within the range 200-499"
            )
    return text


# ---------------------------------------------------------------------------------------------
# Target group attributes (Describe/ModifyTargetGroupAttributes)


def attributes_from_params(
    items: Sequence[Mapping[str, Any]], current: TargetGroupAttributes, protocol: str = "HTTP"
) -> TargetGroupAttributes:
    """Apply ModifyTargetGroupAttributes ``Attributes`` to the current attributes.

    :param items: ``[{"Key": ..., "Value": ...}, ...]``; later items win over earlier ones.
    Returns: the new ``TargetGroupAttributes``.
    Raises: ElbError ValidationError (unknown key, bad value, out of range) or
        InvalidConfigurationRequest (a combination AWS refuses, or a setting portside does
        not implement).
    """
    changes: dict[str, Any] = {}
    for index, item in enumerate(items, start=1):
        key = str(item.get("Key", ""))
        value = "" if item.get("Value") is None else str(item["Value"]).strip()
        _check_key(key, index)
        if key == "deregistration_delay.timeout_seconds":
            changes["deregistration_delay_s"] = _attr_int(key, value, 0, 3600)
        elif key == "slow_start.duration_seconds":
            seconds = _attr_int(key, value, 0, 900)
            if 0 < seconds < 30:
                raise validation_error(f"'{key}' value '{value}' must be between '30-900' inclusive")
            changes["slow_start_s"] = seconds
        elif key == "load_balancing.algorithm.type":
            changes["algorithm"] = _algorithm(value)
        elif key == "stickiness.enabled":
            if value.lower() not in ("true", "false"):
                raise validation_error(f"'{key}' value '{value}' must be one of [true, false]")
            changes["stickiness_enabled"] = value.lower() == "true"
        elif key == "stickiness.type":
            changes["stickiness_type"] = _stickiness_type(value, protocol)
        elif key == "stickiness.lb_cookie.duration_seconds":
            changes["stickiness_duration_s"] = _attr_int(key, value, 1, 604800)
        elif key in _FIXED:
            if value != _FIXED[key]:
                raise invalid_configuration(
                    f"Target group attribute '{key}' cannot be changed in portside: only its default "
                    f"value '{_FIXED[key]}' is supported"
                )
        else:
            raise validation_error(f"Target group attribute key '{key}' is not recognized")
    result = replace(current, **changes)
    if result.slow_start_s > 0 and result.algorithm == "least_outstanding_requests":
        raise invalid_configuration(_SLOW_START_LOR)
    return result


def attributes_to_params(attrs: TargetGroupAttributes) -> list[dict[str, str]]:
    """The ``Attributes`` DescribeTargetGroupAttributes returns.

    Returns: every key AWS returns for an ALB instance/ip target group, in AWS's order, as
    ``{"Key": ..., "Value": ...}``; the keys portside acts on carry ``attrs``' values.
    """
    acted = {
        "stickiness.enabled": "true" if attrs.stickiness_enabled else "false",
        "deregistration_delay.timeout_seconds": str(attrs.deregistration_delay_s),
        "stickiness.type": attrs.stickiness_type,
        "stickiness.lb_cookie.duration_seconds": str(attrs.stickiness_duration_s),
        "slow_start.duration_seconds": str(attrs.slow_start_s),
        "load_balancing.algorithm.type": attrs.algorithm,
    }
    return [{"Key": k, "Value": acted.get(k, default)} for k, default in ATTRIBUTE_DEFAULTS]


def _check_key(key: str, index: int) -> None:
    member = f"attributes.{index}.member.key"
    if not key or len(key) > 256:
        bound = "greater than or equal to 1" if not key else "less than or equal to 256"
        raise validation_error(constraint_message(key, member, f"Member must have length {bound}"))
    if not all(c.isascii() and (c.isalnum() or c in "._") for c in key):
        raise validation_error(
            constraint_message(
                key, member, "Member must satisfy regular expression pattern: ^[a-zA-Z0-9._]+$"
            )
        )


def _attr_int(key: str, value: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise validation_error(f"'{key}' value '{value}' must be between '{low}-{high}' inclusive")
    return int(value)


def _algorithm(value: str) -> str:
    if value in ("round_robin", "least_outstanding_requests"):
        return value
    if value == "weighted_random":
        raise invalid_configuration(
            "Load balancing algorithm 'weighted_random' is not supported by portside; "
            "use 'round_robin' or 'least_outstanding_requests'"
        )
    raise validation_error(
        f"'load_balancing.algorithm.type' value '{value}' must be one of "
        "[round_robin, least_outstanding_requests, weighted_random]"
    )


def _stickiness_type(value: str, protocol: str) -> str:
    if value == "lb_cookie":
        return value
    if value == "app_cookie":
        raise invalid_configuration(
            "Stickiness type 'app_cookie' is not supported by portside; use 'lb_cookie'"
        )
    if value == "source_ip":
        raise invalid_configuration(
            f"Stickiness type 'source_ip' is not supported for target groups with the {protocol} protocol"
        )
    raise validation_error("'Stickiness type' must be one of [app_cookie, lb_cookie, source_ip]")
