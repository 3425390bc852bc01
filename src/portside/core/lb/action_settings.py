"""ELBv2 rule actions -> validated ``model.Action`` values: forward, redirect, fixed-response.

Used for CreateRule / ModifyRule ``Actions`` and CreateListener / ModifyListener
``DefaultActions`` (via ``rule_settings``). Action shapes, the legacy ``TargetGroupArn`` and the
``ForwardConfig`` forms, redirect loops and fixed-response limits follow spec alb.md §2.3;
authentication actions are refused (the proxy would not act on them). Messages: see ``settings``;
the redirect-loop and missing ``RedirectConfig`` messages are AWS's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from portside.core.lb.errors import (
    constraint_message,
    invalid_action,
    target_group_not_found,
    validation_error,
)
from portside.core.lb.model import Action, WeightedTargetGroup
from portside.core.lb.params import bool_param, given, int_param

__all__ = ["ACTION_TYPES", "TargetGroupExists", "actions_from_params"]

ACTION_TYPES = (
    "forward",
    "authenticate-oidc",
    "authenticate-cognito",
    "redirect",
    "fixed-response",
    "jwt-validation",
)
CONTENT_TYPES = ("text/plain", "text/css", "text/html", "application/javascript", "application/json")
MAX_TARGET_GROUPS_PER_ACTION = 5
_LOOP = "The redirect configuration is not valid because it creates a loop."


TargetGroupExists = Callable[[str], bool]




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
        order = int_param(item["Order"], f"actions.{index}.member.order", 1, 50000) if given(item, "Order") else 1
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
                int_param(tup["Weight"], f"{member}.targetGroups.{j}.member.weight", 0, 999)
                if given(tup, "Weight")
                else 1
            )
            groups.append(WeightedTargetGroup(str(tup["TargetGroupArn"]), weight))
        if len({g.arn for g in groups}) != len(groups):
            raise validation_error("A target group can be specified only once in a forward action")
        stick = config.get("TargetGroupStickinessConfig")
        if isinstance(stick, Mapping) and given(stick, "Enabled"):
            sticky = bool_param(stick["Enabled"], f"{member}.targetGroupStickinessConfig.enabled")
            if sticky:
                if not given(stick, "DurationSeconds"):
                    raise validation_error(
                        "You must specify a duration when enabling target group stickiness"
                    )
                duration = int_param(
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
        port = str(int_param(port, f"{member}.port", 1, 65535))
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
