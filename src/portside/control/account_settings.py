"""PutAccountSetting, PutAccountSettingDefault, ListAccountSettings, DeleteAccountSetting.

The rules and AWS's defaults are in core/account_settings.py. Every caller is the account's root
user (portside has no IAM), so a setting put without ``principalArn`` is the account's default.
Of the settings, ``containerInsights`` is applied (it is the setting a new cluster starts with);
the others are stored and answered only (docs/ecs-api.md).
"""

from __future__ import annotations

from typing import Any

from portside.control.pagination import paginate
from portside.control.plane import ControlPlane
from portside.core.account_settings import (
    SETTINGS,
    check_name,
    check_principal,
    check_value,
    effective,
    root_arn,
)
from portside.errors import InvalidParameterException

MAX_LIST = 10


def put_account_setting(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name(params.get("name"))
    value = check_value(name, params.get("value"))
    principal = check_principal(params.get("principalArn"), plane.account)
    with plane.store.transaction():
        plane.store.put_account_setting(region, principal, name, value)
    return {"setting": _setting(name, value, principal)}


def put_account_setting_default(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return put_account_setting(plane, region, {"name": params.get("name"), "value": params.get("value")})


def delete_account_setting(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name(params.get("name"))
    principal = check_principal(params.get("principalArn"), plane.account)
    with plane.store.transaction():
        value = plane.store.account_settings(region).get((principal, name))
        if value is None or not plane.store.delete_account_setting(region, principal, name):
            raise InvalidParameterException(
                f"The account setting {name} is not set for principal {principal}."
            )
    return {"setting": _setting(name, value, principal)}


def list_account_settings(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = check_name(params["name"]) if params.get("name") is not None else None
    wanted_value = params.get("value")
    if wanted_value is not None and name is None:
        raise InvalidParameterException("value can be given only together with name.")
    principal = check_principal(params.get("principalArn"), plane.account)
    stored = plane.store.account_settings(region)
    out = []
    for setting in SETTINGS:
        if name is not None and setting != name:
            continue
        if params.get("effectiveSettings"):
            value, owner = effective(setting, principal, stored, plane.account)
        elif (principal, setting) in stored:
            value, owner = stored[(principal, setting)], principal
        else:
            continue
        if wanted_value is None or value == wanted_value:
            out.append(
                _setting(setting, value, owner, "user" if (owner, setting) in stored else "aws_managed")
            )
    page, token = paginate(out, params, limit=MAX_LIST)
    answer: dict[str, Any] = {"settings": page}
    if token:
        answer["nextToken"] = token
    return answer


def new_cluster_settings(plane: ControlPlane, region: str) -> list[dict[str, str]]:
    """The settings a new cluster starts with: the account's containerInsights."""
    value, _ = effective(
        "containerInsights", root_arn(plane.account), plane.store.account_settings(region), plane.account
    )
    return [{"name": "containerInsights", "value": value}]


def _setting(name: str, value: str, principal: str, kind: str = "user") -> dict[str, str]:
    return {"name": name, "value": value, "principalArn": principal, "type": kind}
