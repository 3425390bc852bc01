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

The second half converts listener rule ``Conditions`` and ``Actions`` (legacy ``Values`` and
the ``*Config`` forms) into ``model.Condition`` / ``model.Action``: condition limits (5 values
and 5 wildcards per rule, at most one host/path/method/source-ip condition) and action shapes
(forward / redirect / fixed-response) follow spec alb.md §1.8, §2.1-2.3.

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

import ipaddress
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from portside.core.lb.errors import (
    constraint_message,
    invalid_action,
    invalid_configuration,
    target_group_not_found,
    validation_error,
)
from portside.core.lb.health import parse_matcher
from portside.core.lb.model import (
    DEFAULT_HEALTH_CHECK_TIMEOUT_S,
    DEFAULT_RULE_PRIORITY,
    Action,
    Condition,
    HealthCheck,
    Rule,
    TargetGroupAttributes,
    WeightedTargetGroup,
)

__all__ = [
    "ATTRIBUTE_DEFAULTS",
    "AWS_MIN_INTERVAL_S",
    "actions_from_params",
    "attributes_from_params",
    "attributes_to_params",
    "conditions_from_params",
    "health_check_from_params",
    "listener_rule_from_params",
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
# Scalars


def _int(value: Any, member: str, low: int, high: int) -> int:
    """Returns: ``value`` as an int within [low, high]. Raises: ElbError ValidationError."""
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        raise validation_error(constraint_message(value, member, "Member must be an integer")) from None
    if number < low:
        raise validation_error(
            constraint_message(number, member, f"Member must have value greater than or equal to {low}")
        )
    if number > high:
        raise validation_error(
            constraint_message(number, member, f"Member must have value less than or equal to {high}")
        )
    return number


def _bool(value: Any, member: str) -> bool:
    """Returns: ``value`` as a bool (``true``/``false``, any case). Raises: ElbError ValidationError."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise validation_error(constraint_message(value, member, "Member must be a boolean (true or false)"))


def _given(params: Mapping[str, Any], key: str) -> bool:
    return params.get(key) is not None


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
    if _given(params, "HealthCheckProtocol"):
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
    if _given(params, "HealthCheckPort"):
        port = str(params["HealthCheckPort"]).strip()
        if port != "traffic-port":
            if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                raise validation_error(
                    f"Health check port '{port}' must be 'traffic-port' or a port between 1 and 65535"
                )
            port = str(int(port))
        changes["port"] = port
    if _given(params, "HealthCheckPath"):
        path = str(params["HealthCheckPath"])
        if not 1 <= len(path) <= 1024:
            bound = "greater than or equal to 1" if not path else "less than or equal to 1024"
            raise validation_error(
                constraint_message(path, "healthCheckPath", f"Member must have length {bound}")
            )
        if not path.startswith("/"):
            raise validation_error(f"Health check path '{path}' must begin with a '/' character")
        changes["path"] = path
    interval_given = _given(params, "HealthCheckIntervalSeconds")
    timeout_given = _given(params, "HealthCheckTimeoutSeconds")
    if interval_given:
        changes["interval_s"] = _int(
            params["HealthCheckIntervalSeconds"], "healthCheckIntervalSeconds", min_interval_s, 300
        )
    if timeout_given:
        changes["timeout_s"] = _int(
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
        if _given(params, key):
            changes[field] = _int(params[key], key[0].lower() + key[1:], 2, 10)
    matcher = params.get("Matcher")
    http_code = params.get("Matcher.HttpCode")
    if isinstance(matcher, Mapping):
        if matcher.get("GrpcCode") is not None:
            raise invalid_configuration("Matcher.GrpcCode is not supported: portside target groups use HTTP1")
        http_code = matcher.get("HttpCode", http_code)
    if http_code is not None or isinstance(matcher, Mapping):
        changes["matcher"] = _matcher(http_code)
    if _given(params, "HealthCheckEnabled") and not _bool(params["HealthCheckEnabled"], "healthCheckEnabled"):
        raise invalid_configuration(
            f"Health checks cannot be disabled for target groups with target type '{target_type}'"
        )
    result = replace(base, **changes)
    both_given = interval_given and timeout_given
    if result.timeout_s > result.interval_s or (both_given and result.timeout_s == result.interval_s):
        raise validation_error(_INTERVAL_TIMEOUT)
    return result


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


# ---------------------------------------------------------------------------------------------
# Listener rules (CreateRule / ModifyRule; CreateListener / ModifyListener DefaultActions)

CONDITION_FIELDS = (
    "http-header",
    "http-request-method",
    "host-header",
    "path-pattern",
    "query-string",
    "source-ip",
)
_CONFIG_KEYS = {
    "host-header": "HostHeaderConfig",
    "path-pattern": "PathPatternConfig",
    "http-header": "HttpHeaderConfig",
    "http-request-method": "HttpRequestMethodConfig",
    "query-string": "QueryStringConfig",
    "source-ip": "SourceIpConfig",
}
_SINGLE = ("host-header", "http-request-method", "path-pattern", "source-ip")
ACTION_TYPES = (
    "forward",
    "authenticate-oidc",
    "authenticate-cognito",
    "redirect",
    "fixed-response",
    "jwt-validation",
)
CONTENT_TYPES = ("text/plain", "text/css", "text/html", "application/javascript", "application/json")
MAX_CONDITION_VALUES = 5  # per rule, across conditions (ALB quota)
MAX_WILDCARDS = 5  # per rule (ALB quota)
MAX_TARGET_GROUPS_PER_ACTION = 5
_LETTERS = frozenset(string.ascii_letters)
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-.*?")
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "_-.$/~\"'@:+&*?")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_LOOP = "The redirect configuration is not valid because it creates a loop."

TargetGroupExists = Callable[[str], bool]


def listener_rule_from_params(
    arn: str,
    priority: Any,
    conditions: Sequence[Mapping[str, Any]] | None,
    actions: Sequence[Mapping[str, Any]],
    *,
    is_default: bool = False,
    listener_protocol: str = "HTTP",
    listener_port: int | None = None,
    target_group_exists: TargetGroupExists | None = None,
) -> Rule:
    """Build a listener rule from CreateRule/ModifyRule members (or a listener's DefaultActions).

    :param priority: 1-50000; ignored for the default rule (which gets 50001).
    :param is_default: the listener's default rule: no conditions allowed.
    :param target_group_exists: when given, forward actions naming an unknown ARN are refused.
    Returns: a ``model.Rule``.
    Raises: ElbError (ValidationError, InvalidLoadBalancerAction, InvalidConfigurationRequest,
        TargetGroupNotFound).
    """
    conds: tuple[Condition, ...] = ()
    if is_default:
        if conditions:
            raise validation_error("The default rule of a listener cannot have conditions")
        prio = DEFAULT_RULE_PRIORITY
    else:
        prio = _int(priority, "priority", 1, 50000)
        conds = conditions_from_params(conditions or [])
    acts = actions_from_params(
        actions,
        listener_protocol=listener_protocol,
        listener_port=listener_port,
        target_group_exists=target_group_exists,
    )
    return Rule(arn=arn, priority=prio, conditions=conds, actions=acts, is_default=is_default)


def conditions_from_params(items: Sequence[Mapping[str, Any]]) -> tuple[Condition, ...]:
    """Validate and convert a rule's ``Conditions``.

    Returns: one ``model.Condition`` per item, in order.
    Raises: ElbError ValidationError (shape, characters, lengths, more than one
        host/path/method/source-ip condition, more than 5 values or 5 wildcards per rule) or
        InvalidConfigurationRequest (``RegexValues``, not supported by portside).
    """
    if not items:
        raise validation_error("A rule must have at least one condition")
    out: list[Condition] = []
    values = wildcards = 0
    for item in items:
        cond = _condition(item)
        if cond.field in _SINGLE and any(c.field == cond.field for c in out):
            raise validation_error(f"A rule can only have one '{cond.field}' condition")
        out.append(cond)
        values += len(cond.values) + len(cond.query_pairs)
        wildcards += _wildcards(cond)
    if values > MAX_CONDITION_VALUES:
        raise validation_error(f"A rule can only have '{MAX_CONDITION_VALUES}' condition values")
    if wildcards > MAX_WILDCARDS:
        raise validation_error(f"A rule can only have '{MAX_WILDCARDS}' wildcards")
    return tuple(out)


def _str_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    return [str(v) for v in raw]


def _condition(item: Mapping[str, Any]) -> Condition:
    configs = [key for key in _CONFIG_KEYS.values() if item.get(key) is not None]
    field = item.get("Field")
    if field is None:
        if len(configs) != 1:
            raise validation_error("A condition field must be specified")
        field = next(f for f, k in _CONFIG_KEYS.items() if k == configs[0])
    field = str(field)
    if field not in CONDITION_FIELDS:
        raise validation_error(f"Condition field '{field}' must be one of '[{', '.join(CONDITION_FIELDS)}]'")
    config_key = _CONFIG_KEYS[field]
    config = item.get(config_key)
    if item.get("RegexValues") or (isinstance(config, Mapping) and config.get("RegexValues")):
        raise invalid_configuration(
            "RegexValues conditions are not supported by portside; use Values with '*' and '?' wildcards"
        )
    for other in configs:
        if other != config_key:
            raise validation_error(f"A '{other}' cannot be specified with '{field}'")
    legacy = item.get("Values")
    if legacy is not None and field not in ("host-header", "path-pattern"):
        raise validation_error(f"The 'Values' field is not compatible with '{field}'")
    if legacy is not None and config is not None:
        raise validation_error(
            f"You cannot provide both Values and '{config_key}' for a condition of type '{field}'"
        )
    if field in ("host-header", "path-pattern"):
        values = _str_list(legacy)
        if legacy is not None and len(values) > 1:
            raise validation_error(f"The '{field}' field contains too many values; the limit is '1'")
        if legacy is None:
            values = _str_list((config or {}).get("Values"))
        if not values or not all(values):
            raise validation_error("A condition value must be specified")
        check = _host_value if field == "host-header" else _path_value
        return Condition(field, tuple(check(v) for v in values))
    if not isinstance(config, Mapping):
        raise validation_error(f"A '{config_key}' must be specified with '{field}'")
    if field == "query-string":
        return Condition(field, query_pairs=_query_pairs(config.get("Values")))
    values = _str_list(config.get("Values"))
    if not values or not all(values):
        raise validation_error(f"A '{field}' value must be specified")
    if field == "http-header":
        return Condition(
            field, tuple(_limit(v, field, 128) for v in values), header_name=_header_name(config)
        )
    if field == "http-request-method":
        for v in values:
            _limit(v, field, 40)
            if not set(v) <= frozenset(string.ascii_uppercase + "_-"):
                raise validation_error(
                    "The 'http-request-method' value is invalid; the allowed characters are A-Z, "
                    "hyphen and underscore"
                )
        return Condition(field, tuple(values))
    return Condition(field, tuple(_cidr(v) for v in values))  # source-ip


def _limit(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise validation_error(f"The '{what}' value is too long; the limit is '{limit}'")
    return value


def _host_value(value: str) -> str:
    _limit(value, "host-header", 128)
    last = value.rpartition(".")[2]
    if (
        not set(value) <= _HOST_CHARS
        or "." not in value
        or not last
        or not set(last) <= _LETTERS | {"*", "?"}
    ):
        raise validation_error(
            f"The 'host-header' value '{value}' is invalid; it can contain only A-Z, a-z, 0-9, '-', "
            "'.', '*' and '?', must include a '.', and only letters after the final '.'"
        )
    return value


def _path_value(value: str) -> str:
    value = value.replace("&amp;", "&")
    _limit(value, "path-pattern", 128)
    if not set(value) <= _PATH_CHARS:
        raise validation_error(
            f"The 'path-pattern' value '{value}' is invalid; the allowed characters are A-Z, a-z, 0-9, "
            "_ - . $ / ~ \" ' @ : + & * ?"
        )
    return value


def _header_name(config: Mapping[str, Any]) -> str:
    name = str(config.get("HttpHeaderName") or "")
    if not name:
        raise validation_error("A 'HttpHeaderName' must be specified with 'http-header'")
    if len(name) > 40:
        raise validation_error("The 'HttpHeaderName' value is too long; the limit is '40'")
    if not set(name) <= _TOKEN_CHARS:
        raise validation_error(f"The 'HttpHeaderName' value '{name}' is not a valid HTTP header name")
    if name.lower() == "host":
        raise validation_error(
            "You can't use an HTTP header condition to specify the host header; use a 'host-header' condition"
        )
    return name


def _query_pairs(raw: Any) -> tuple[tuple[str | None, str], ...]:
    pairs: list[tuple[str | None, str]] = []
    for pair in raw or []:
        if not isinstance(pair, Mapping) or pair.get("Value") is None:
            raise validation_error("A 'Value' must be specified in 'QueryStringKeyValuePair'")
        key = None if pair.get("Key") is None else str(pair["Key"])
        value = str(pair["Value"])
        if key is not None and len(key) > 128:
            raise validation_error("The 'Key' value is too long; the limit is '128'")
        if len(value) > 128:
            raise validation_error("The 'Value' value is too long; the limit is '128'")
        if not value or key == "":
            raise validation_error("A condition value must be specified")
        pairs.append((key, value))
    if not pairs:
        raise validation_error("A 'query-string' value must be specified")
    return tuple(pairs)


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        network = None
    if network is None or "/" not in value:
        raise validation_error(f"The 'source-ip' value '{value}' is not a valid CIDR block")
    if network == ipaddress.ip_network("255.255.255.255/32"):
        raise validation_error(f"The 'source-ip' value '{value}' is not allowed")
    return value.strip()


def _count(text: str, escapes: bool) -> int:
    count, i = 0, 0
    while i < len(text):
        if escapes and text[i] == "\\":
            i += 2
            continue
        count += text[i] in "*?"
        i += 1
    return count


def _wildcards(cond: Condition) -> int:
    if cond.field in ("http-request-method", "source-ip"):
        return 0
    total = sum(_count(v, False) for v in cond.values)
    return total + sum(_count(k or "", True) + _count(v, True) for k, v in cond.query_pairs)


def actions_from_params(
    items: Sequence[Mapping[str, Any]],
    *,
    listener_protocol: str = "HTTP",
    listener_port: int | None = None,
    target_group_exists: TargetGroupExists | None = None,
) -> tuple[Action, ...]:
    """Validate and convert a rule's ``Actions`` (or a listener's ``DefaultActions``).

    Returns: the actions as ``model.Action`` values (always exactly one terminal action, since
    portside supports no authentication actions).
    Raises: ElbError ValidationError, InvalidLoadBalancerAction (unsupported type, missing or
        invalid config, redirect loop) or TargetGroupNotFound.
    """
    if not items:
        raise validation_error("A rule must have at least one action")
    parsed = []
    for index, item in enumerate(items, start=1):
        kind = str(item.get("Type", ""))
        if kind not in ACTION_TYPES:
            raise validation_error(
                constraint_message(
                    kind,
                    f"actions.{index}.member.type",
                    f"Member must satisfy enum value set: [{', '.join(ACTION_TYPES)}]",
                )
            )
        if kind not in ("forward", "redirect", "fixed-response"):
            raise invalid_action(f"Action type '{kind}' is not supported by portside")
        order = _int(item["Order"], f"actions.{index}.member.order", 1, 50000) if _given(item, "Order") else 1
        parsed.append((order, index, item, kind))
    if len(parsed) > 1:
        raise invalid_action(
            "A rule can have only one of the actions 'forward', 'redirect' and 'fixed-response'"
        )
    order, index, item, kind = parsed[0]
    if kind == "forward":
        return (_forward(item, index, order, target_group_exists),)
    if kind == "redirect":
        return (_redirect(item, index, order, listener_protocol, listener_port),)
    return (_fixed_response(item, index, order),)


def _forward(item: Mapping[str, Any], index: int, order: int, exists: TargetGroupExists | None) -> Action:
    arn, config = item.get("TargetGroupArn"), item.get("ForwardConfig")
    if arn is None and not isinstance(config, Mapping):
        raise invalid_action(
            "For actions of type 'forward', you must specify the following fields: "
            "'TargetGroupArn' or 'ForwardConfig'"
        )
    groups: list[WeightedTargetGroup] = []
    sticky, duration = False, 0
    if isinstance(config, Mapping):
        tuples = list(config.get("TargetGroups") or [])
        if len(tuples) > MAX_TARGET_GROUPS_PER_ACTION:
            raise validation_error(
                f"A forward action can have at most '{MAX_TARGET_GROUPS_PER_ACTION}' target groups"
            )
        member = f"actions.{index}.member.forwardConfig"
        for j, tup in enumerate(tuples, start=1):
            if not tup.get("TargetGroupArn"):
                raise validation_error("A target group ARN must be specified")
            weight = (
                _int(tup["Weight"], f"{member}.targetGroups.{j}.member.weight", 0, 999)
                if _given(tup, "Weight")
                else 1
            )
            groups.append(WeightedTargetGroup(str(tup["TargetGroupArn"]), weight))
        if len({g.arn for g in groups}) != len(groups):
            raise validation_error("A target group can be specified only once in a forward action")
        stick = config.get("TargetGroupStickinessConfig")
        if isinstance(stick, Mapping) and _given(stick, "Enabled"):
            sticky = _bool(stick["Enabled"], f"{member}.targetGroupStickinessConfig.enabled")
            if sticky:
                if not _given(stick, "DurationSeconds"):
                    raise validation_error(
                        "You must specify a duration when enabling target group stickiness"
                    )
                duration = _int(
                    stick["DurationSeconds"],
                    f"{member}.targetGroupStickinessConfig.durationSeconds",
                    1,
                    604800,
                )
    if arn is not None:
        if groups and (len(groups) != 1 or groups[0].arn != arn):
            raise validation_error(
                "You can specify only one target group using ForwardConfig and it must be the same "
                "target group specified in TargetGroupArn"
            )
        groups = groups or [WeightedTargetGroup(str(arn), 1)]
    if not groups:
        raise validation_error("A forward action must name at least one target group")
    if len(groups) > 1 and not any(g.weight for g in groups):
        raise validation_error(
            "At least one target group in a forward action must have a weight greater than 0"
        )
    if exists is not None:
        missing = [g.arn for g in groups if not exists(g.arn)]
        if missing:
            raise target_group_not_found(missing)
    return Action("forward", order, tuple(groups), sticky, duration)


def _redirect(
    item: Mapping[str, Any], index: int, order: int, listener_protocol: str, listener_port: int | None
) -> Action:
    config = item.get("RedirectConfig")
    if not isinstance(config, Mapping):
        raise invalid_action(
            "For actions of type 'redirect', you must specify the following fields: 'RedirectConfig'"
        )
    member = f"actions.{index}.member.redirectConfig"
    status = str(config.get("StatusCode", ""))
    if status not in ("HTTP_301", "HTTP_302"):
        raise validation_error(
            constraint_message(
                status, f"{member}.statusCode", "Member must satisfy enum value set: [HTTP_301, HTTP_302]"
            )
        )
    protocol = str(config.get("Protocol") or "#{protocol}")
    if protocol not in ("HTTP", "HTTPS", "#{protocol}"):
        raise validation_error(
            constraint_message(
                protocol,
                f"{member}.protocol",
                "Member must satisfy regular expression pattern: ^(HTTPS?|#\\{protocol\\})$",
            )
        )
    port = str(config.get("Port") or "#{port}")
    if port != "#{port}":
        port = str(_int(port, f"{member}.port", 1, 65535))
    host = str(config.get("Host") or "#{host}")
    path = str(config.get("Path") or "/#{path}")
    query = "#{query}" if config.get("Query") is None else str(config["Query"])
    for name, value, low in (("host", host, 1), ("path", path, 1), ("query", query, 0)):
        if not low <= len(value) <= 128:
            raise validation_error(
                constraint_message(
                    value, f"{member}.{name}", "Member must have length less than or equal to 128"
                )
            )
    if not path.startswith("/"):
        raise validation_error("The redirect path must be an absolute path starting with '/'")
    if listener_protocol == "HTTPS" and protocol == "HTTP":
        raise invalid_action("You cannot redirect HTTPS to HTTP")
    if (
        protocol in ("#{protocol}", listener_protocol)
        and host == "#{host}"
        and port in ("#{port}", str(listener_port))
        and path == "/#{path}"
    ):
        raise invalid_action(_LOOP)
    return Action(
        "redirect",
        order,
        redirect_protocol=protocol,
        redirect_host=host,
        redirect_port=port,
        redirect_path=path,
        redirect_query=query,
        redirect_status=int(status[5:]),
    )


def _fixed_response(item: Mapping[str, Any], index: int, order: int) -> Action:
    config = item.get("FixedResponseConfig")
    if not isinstance(config, Mapping):
        raise invalid_action(
            "For actions of type 'fixed-response', you must specify the following fields: "
            "'FixedResponseConfig'"
        )
    member = f"actions.{index}.member.fixedResponseConfig"
    status = str(config.get("StatusCode", ""))
    if not (len(status) == 3 and status[0] in "245" and status.isascii() and status.isdigit()):
        raise validation_error(
            constraint_message(
                status,
                f"{member}.statusCode",
                "Member must satisfy regular expression pattern: ^(2|4|5)\\d\\d$",
            )
        )
    content_type = config.get("ContentType")
    if content_type is not None and str(content_type) not in CONTENT_TYPES:
        raise invalid_action(
            "The ContentType must be one of:'text/html', 'application/json', 'application/javascript', "
            "'text/css', 'text/plain'"
        )
    body = "" if config.get("MessageBody") is None else str(config["MessageBody"])
    if len(body) > 1024:
        raise validation_error(
            constraint_message(
                body[:32] + "...",
                f"{member}.messageBody",
                "Member must have length less than or equal to 1024",
            )
        )
    return Action(
        "fixed-response",
        order,
        fixed_status=int(status),
        fixed_content_type=None if content_type is None else str(content_type),
        fixed_body=body,
    )
