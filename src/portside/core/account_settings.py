"""ECS account settings: their names, the values each takes, AWS's defaults, and which value applies
to a principal (pure; the store keeps what was put, control/account_settings.py answers the API).

A setting put for the account's root user is the account's default (PutAccountSettingDefault
writes exactly that); one put for an IAM user or role overrides it for that principal only.
"""

from __future__ import annotations

import re

from portside.errors import InvalidParameterException

_ON_OFF = ("enabled", "disabled")
#: name -> (allowed values, AWS's default when nobody put one).
SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "serviceLongArnFormat": (("enabled",), "enabled"),
    "taskLongArnFormat": (("enabled",), "enabled"),
    "containerInstanceLongArnFormat": (("enabled",), "enabled"),
    "awsvpcTrunking": (_ON_OFF, "disabled"),
    "containerInsights": (("enabled", "disabled", "enhanced"), "disabled"),
    "fargateFIPSMode": (_ON_OFF, "disabled"),
    "tagResourceAuthorization": (("on", "off"), "on"),
    "fargateTaskRetirementWaitPeriod": (("0", "7", "14"), "7"),
    "guardDutyActivate": (_ON_OFF, "disabled"),
    "defaultLogDriverMode": (("blocking", "non-blocking"), "non-blocking"),
    "fargateEventWindows": (_ON_OFF, "disabled"),
}
_PRINCIPAL = re.compile(r"^arn:aws:iam::(?P<account>\d{12}):(?P<who>root|user/.+|role/.+)$")


def root_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def check_name(name: object) -> str:
    if not isinstance(name, str) or name not in SETTINGS:
        raise InvalidParameterException(f"name '{name}' is invalid: it must be one of {', '.join(SETTINGS)}.")
    return name


def check_value(name: str, value: object) -> str:
    allowed, _default = SETTINGS[name]
    if value not in allowed:
        if name.endswith("LongArnFormat") and value == "disabled":
            raise InvalidParameterException(
                f"value 'disabled' is invalid for {name}: the long ARN format can no longer be opted out of."
            )
        raise InvalidParameterException(
            f"value '{value}' is invalid for {name}: it must be one of {', '.join(allowed)}."
        )
    return str(value)


def check_principal(principal: object, account: str) -> str:
    """The principal a setting is for: the caller (the root user) when not given, else an IAM user,
    role or root ARN of this account."""
    if principal is None:
        return root_arn(account)
    match = _PRINCIPAL.match(principal) if isinstance(principal, str) else None
    if match is None or match["account"] != account:
        raise InvalidParameterException(
            f"principalArn '{principal}' is invalid: it must be the ARN of an IAM user, role or the root user of account {account}."
        )
    return str(principal)


def effective(name: str, principal: str, stored: dict[tuple[str, str], str], account: str) -> tuple[str, str]:
    """(value, principal it was set for) for ``principal``: its own, else the account's default, else
    AWS's default (reported as the root user's)."""
    if (principal, name) in stored:
        return stored[(principal, name)], principal
    root = root_arn(account)
    if (root, name) in stored:
        return stored[(root, name)], root
    return SETTINGS[name][1], root
