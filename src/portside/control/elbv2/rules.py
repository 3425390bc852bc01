"""CreateRule, DescribeRules, ModifyRule, DeleteRule, SetRulePriorities; action checks.

Every listener has a default rule (created with it, ``IsDefault`` true, ``Priority`` "default",
no conditions, its actions = the listener's ``DefaultActions``); it cannot be deleted or
reprioritised, and ModifyRule may change only its actions (which also become the listener's
``DefaultActions``). Numbered rules have a priority 1-50000 unique per listener
(``PriorityInUse``), at least one condition and at most ``MAX_RULES_PER_LISTENER`` per
listener (``TooManyRules``). ModifyRule replaces whole lists. Conditions and actions are
validated and converted by ``core/lb/rule_settings.py``; this module checks what needs the store:
the target groups an action forwards to exist (``TargetGroupNotFound``) and serve no other
load balancer (``TargetGroupAssociationLimit``).

Stored records are AWS-shaped and normalised the way DescribeRules shows them: a ``forward``
action carries both ``TargetGroupArn`` (when it names one group) and ``ForwardConfig``;
``host-header`` and ``path-pattern`` conditions carry both ``Values`` and their ``*Config``.
"""

from __future__ import annotations

import copy
from typing import Any

from portside.control.elbv2 import config, tags
from portside.control.elbv2.common import (
    arn_kind,
    check_arn,
    fail,
    get,
    new_id,
    paginate,
    public,
    require,
    require_all,
    rule_arn,
    validation,
    with_marker,
)
from portside.control.elbv2.target_groups import action_target_groups, usage
from portside.control.plane import ControlPlane
from portside.core.lb import action_settings, rule_settings
from portside.core.lb.model import DEFAULT_RULE_PRIORITY

MAX_RULES_PER_LISTENER = 100
_CONFIG_OF = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig"}


# --------------------------------------------------------------------------- checks and normal forms


def check_actions(
    plane: ControlPlane, region: str, lb_arn: str, actions: Any, protocol: str, port: int | None
) -> list[dict[str, Any]]:
    """Validate API-shaped actions for a rule of a listener (``protocol``, ``port``) of ``lb_arn``.

    Returns their stored form (:func:`normal_actions`).
    """
    actions = [dict(a) for a in actions or []]
    action_settings.actions_from_params(  # shape, limits, redirect loops, unknown target groups (ElbError)
        list(actions),
        listener_protocol=protocol,
        listener_port=port,
        target_group_exists=lambda arn: arn_kind(arn) == "targetgroup" and get(plane, region, "targetgroup", arn) is not None,
    )
    used_by = usage(plane, region)
    for arn in action_target_groups(actions):
        others = [lb for lb in used_by.get(arn, []) if lb != lb_arn]
        if others:
            raise fail(
                "TargetGroupAssociationLimit",
                f"The following target groups cannot be associated with more than one load balancer: {arn}",
            )
    return normal_actions(actions)


def normal_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Actions as DescribeRules shows them (see the module docstring); ``Order`` 1..N when absent."""
    out = []
    for position, given in enumerate(actions, start=1):
        action = copy.deepcopy(given)
        action.setdefault("Order", position)
        if action.get("Type") == "forward":
            forward = action.get("ForwardConfig") or {}
            groups = forward.get("TargetGroups") or []
            if not groups and action.get("TargetGroupArn"):
                groups = [{"TargetGroupArn": action["TargetGroupArn"]}]
            groups = [{"TargetGroupArn": g["TargetGroupArn"], "Weight": g.get("Weight", 1)} for g in groups]
            stickiness = dict(forward.get("TargetGroupStickinessConfig") or {"Enabled": False})
            stickiness.setdefault("Enabled", False)
            action["ForwardConfig"] = {"TargetGroups": groups, "TargetGroupStickinessConfig": stickiness}
            if len(groups) == 1:
                action["TargetGroupArn"] = groups[0]["TargetGroupArn"]
        out.append(action)
    return out


def render_conditions(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored (as given) conditions as DescribeRules shows them: host-header and path-pattern
    carry both ``Values`` and their ``*Config``."""
    out = []
    for given in conditions:
        condition = copy.deepcopy(given)
        key = _CONFIG_OF.get(condition.get("Field", ""))
        if key is not None:
            values = condition.get("Values") or (condition.get(key) or {}).get("Values") or []
            condition["Values"] = list(values)
            condition[key] = {"Values": list(values)}
        out.append(condition)
    return out


def check_conditions(conditions: Any) -> list[dict[str, Any]]:
    """Validate a rule's conditions (ElbError); returns them as given, for storage."""
    given: list[dict[str, Any]] = [dict(c) for c in conditions or []]
    rule_settings.conditions_from_params(list(given))  # fields, values, limits, AWS's messages
    return given


def render(body: dict[str, Any]) -> dict[str, Any]:
    out = public(body)
    out["Conditions"] = render_conditions(body.get("Conditions") or [])
    return out


def _refuse_transforms(params: dict[str, Any]) -> None:
    if params.get("Transforms"):
        raise fail("InvalidConfigurationRequest", "Rule transforms are not supported by portside")


# --------------------------------------------------------------------------- store


def listener_rules(plane: ControlPlane, listener_arn: str) -> list[dict[str, Any]]:
    """A listener's rules by priority, the default rule last."""
    return plane.store.rules_of(listener_arn)


def default_rule_body(listener_arn: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "RuleArn": rule_arn(listener_arn, new_id()),
        "Priority": "default",
        "Conditions": [],
        "Actions": actions,
        "IsDefault": True,
    }


def insert_rule(plane: ControlPlane, region: str, listener_arn: str, body: dict[str, Any]) -> None:
    default = bool(body.get("IsDefault"))
    plane.store.add_rule(region, listener_arn, body, DEFAULT_RULE_PRIORITY if default else int(body["Priority"]))


def update_rule(plane: ControlPlane, body: dict[str, Any]) -> None:
    priority = DEFAULT_RULE_PRIORITY if body.get("IsDefault") else int(body["Priority"])
    plane.store.update_rule(body, priority)


def _listener_of(plane: ControlPlane, rule_arn_: str) -> str:
    return plane.store.rule_listener(rule_arn_)


# --------------------------------------------------------------------------- API operations


def create_rule(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    listener = require(plane, region, "listener", params.get("ListenerArn"))
    listener_arn = listener["ListenerArn"]
    priority = params.get("Priority")
    if priority is None:
        raise validation("A rule priority must be specified")
    _refuse_transforms(params)
    conditions = check_conditions(params.get("Conditions"))
    actions = check_actions(
        plane, region, listener["LoadBalancerArn"], params.get("Actions"), listener["Protocol"], listener["Port"]
    )
    new_tags = tags.check_tags(params.get("Tags"))
    existing = [r for r in listener_rules(plane, listener_arn) if not r.get("IsDefault")]
    if any(int(r["Priority"]) == priority for r in existing):
        raise fail("PriorityInUse", f"Priority '{priority}' is currently in use")
    if len(existing) >= MAX_RULES_PER_LISTENER:
        raise fail(
            "TooManyRules",
            f"A listener can have at most {MAX_RULES_PER_LISTENER} rules (besides its default rule)",
        )
    body: dict[str, Any] = {
        "RuleArn": rule_arn(listener_arn, new_id()),
        "Priority": str(priority),
        "Conditions": conditions,
        "Actions": actions,
        "IsDefault": False,
    }
    with plane.store.transaction():
        insert_rule(plane, region, listener_arn, body)
        tags.put_tags(plane, region, body["RuleArn"], new_tags)
    config.publish(plane)
    return {"Rules": [render(body)]}


def describe_rules(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    listener_arn = params.get("ListenerArn")
    arns = params.get("RuleArns")
    if listener_arn and arns:
        raise validation("A listener ARN and rule ARNs cannot be specified at the same time")
    if listener_arn:
        require(plane, region, "listener", listener_arn)
        bodies = listener_rules(plane, listener_arn)
    elif arns:
        bodies = require_all(plane, region, "listener-rule", arns)
    else:
        raise validation("You must specify either a listener ARN or rule ARNs")
    page, marker = paginate(bodies, params)
    return with_marker({"Rules": [render(b) for b in page]}, marker)


def modify_rule(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener-rule", params.get("RuleArn"))
    listener_arn = _listener_of(plane, body["RuleArn"])
    listener = require(plane, region, "listener", listener_arn)
    _refuse_transforms(params)
    new = dict(body)
    if params.get("Conditions") is not None:
        if body.get("IsDefault"):
            if params["Conditions"]:
                raise fail("OperationNotPermitted", "The conditions of a default rule cannot be modified")
        else:
            new["Conditions"] = check_conditions(params["Conditions"])
    if params.get("Actions") is not None:
        new["Actions"] = check_actions(
            plane, region, listener["LoadBalancerArn"], params["Actions"], listener["Protocol"], listener["Port"]
        )
    with plane.store.transaction():
        update_rule(plane, new)
        if new.get("IsDefault"):
            listener["DefaultActions"] = new["Actions"]
            plane.store.update_listener_body(listener)
    config.publish(plane)
    return {"Rules": [render(new)]}


def delete_rule(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener-rule", params.get("RuleArn"))
    if body.get("IsDefault"):
        raise fail("OperationNotPermitted", "A default rule cannot be deleted")
    with plane.store.transaction():
        plane.store.delete_rule(body["RuleArn"])
        tags.delete_tags(plane, [body["RuleArn"]])
    config.publish(plane)
    return {}


def set_rule_priorities(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    pairs = list(params.get("RulePriorities") or [])
    if not pairs:
        raise validation("At least one rule priority must be specified")
    wanted: dict[str, int] = {}
    for pair in pairs:
        arn = check_arn(pair.get("RuleArn"), "listener-rule")
        if pair.get("Priority") is None:
            raise validation(f"A priority must be specified for rule '{arn}'")
        if arn in wanted:
            raise validation(f"Rule '{arn}' is specified more than once")
        wanted[arn] = int(pair["Priority"])
    bodies = require_all(plane, region, "listener-rule", list(wanted))
    if any(b.get("IsDefault") for b in bodies):
        raise fail("OperationNotPermitted", "The priority of a default rule cannot be changed")
    listeners = {_listener_of(plane, b["RuleArn"]) for b in bodies}
    for listener_arn in listeners:
        final: dict[int, str] = {}
        for rule in listener_rules(plane, listener_arn):
            if rule.get("IsDefault"):
                continue
            priority = wanted.get(rule["RuleArn"], int(rule["Priority"]))
            if priority in final:
                raise fail("PriorityInUse", f"Priority '{priority}' is currently in use")
            final[priority] = rule["RuleArn"]
    updated = []
    with plane.store.transaction():
        for body in bodies:
            new = dict(body, Priority=str(wanted[body["RuleArn"]]))
            update_rule(plane, new)
            updated.append(new)
    config.publish(plane)
    return {"Rules": [render(b) for b in updated]}

