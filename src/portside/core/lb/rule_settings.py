"""ELBv2 listener rule parameters -> a validated ``model.Rule`` and its ``model.Condition`` values.

Theory of operation
-------------------
CreateRule / ModifyRule and CreateListener / ModifyListener ``DefaultActions`` arrive as
botocore shapes (legacy ``Values`` and the ``*Config`` forms). Each function validates one
concept and returns an immutable model value or raises ``ElbError`` with the AWS code and
message; nothing is stored. Condition limits (5 values and 5 wildcards per rule, at most one
host/path/method/source-ip condition) follow spec alb.md §1.8, §2.1-2.2; actions are
validated in ``action_settings``. As in ``settings``, a setting the proxy would ignore
(``RegexValues`` conditions, authentication actions) is refused rather than accepted.

Where the messages come from: see ``settings``; the condition messages follow moto's elbv2
backend.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Mapping, Sequence
from typing import Any

from portside.core.lb.action_settings import TargetGroupExists, actions_from_params
from portside.core.lb.errors import invalid_configuration, validation_error
from portside.core.lb.model import DEFAULT_RULE_PRIORITY, Condition, Rule
from portside.core.lb.params import int_param

__all__ = ["conditions_from_params", "listener_rule_from_params"]

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
MAX_CONDITION_VALUES = 5  # per rule, across conditions (ALB quota)
MAX_WILDCARDS = 5  # per rule (ALB quota)
_LETTERS = frozenset(string.ascii_letters)
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-.*?")
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "_-.$/~\"'@:+&*?")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
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
        prio = int_param(priority, "priority", 1, 50000)
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
