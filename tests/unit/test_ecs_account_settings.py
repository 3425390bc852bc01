"""PutAccountSetting(Default), ListAccountSettings and DeleteAccountSetting through a real endpoint and
boto3 (tests/support/ecs_endpoint.py): ECS's names and values, effective settings, filters and
pages; containerInsights is the setting a new cluster starts with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from portside.core.account_settings import SETTINGS
from tests.support.ecs_endpoint import ACCOUNT, EcsEndpoint

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EcsEndpoint]:
    endpoint = EcsEndpoint(tmp_path)
    yield endpoint
    endpoint.close()


def error(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def values(settings: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["value"], s["principalArn"]) for s in settings}


def test_put_list_and_delete(env: EcsEndpoint) -> None:
    ecs = env.ecs
    assert ecs.list_account_settings()["settings"] == []
    put = ecs.put_account_setting_default(name="awsvpcTrunking", value="enabled")["setting"]
    assert put == {"name": "awsvpcTrunking", "value": "enabled", "principalArn": ROOT, "type": "user"}
    ecs.put_account_setting(name="awsvpcTrunking", value="disabled", principalArn=ROLE)
    ecs.put_account_setting(name="guardDutyActivate", value="enabled")  # the caller: the root user
    assert values(ecs.list_account_settings()["settings"]) == {
        "awsvpcTrunking": ("enabled", ROOT),
        "guardDutyActivate": ("enabled", ROOT),
    }
    assert values(ecs.list_account_settings(principalArn=ROLE)["settings"]) == {
        "awsvpcTrunking": ("disabled", ROLE)
    }
    role = ecs.list_account_settings(principalArn=ROLE, effectiveSettings=True, maxResults=10)
    effective = values(role["settings"])
    assert effective["awsvpcTrunking"] == ("disabled", ROLE)  # its own
    assert effective["guardDutyActivate"] == ("enabled", ROOT)  # the account's default
    assert effective["fargateTaskRetirementWaitPeriod"] == ("7", ROOT)  # AWS's
    types = {s["name"]: s["type"] for s in role["settings"]}
    assert (types["awsvpcTrunking"], types["fargateTaskRetirementWaitPeriod"]) == ("user", "aws_managed")
    deleted = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=ROLE)["setting"]
    assert deleted["value"] == "disabled"
    assert values(
        ecs.list_account_settings(principalArn=ROLE, effectiveSettings=True, name="awsvpcTrunking")[
            "settings"
        ]
    ) == {"awsvpcTrunking": ("enabled", ROOT)}


def test_filters_and_pages(env: EcsEndpoint) -> None:
    ecs = env.ecs
    ecs.put_account_setting(name="awsvpcTrunking", value="enabled")
    only = ecs.list_account_settings(effectiveSettings=True, name="awsvpcTrunking", value="enabled")[
        "settings"
    ]
    assert [s["name"] for s in only] == ["awsvpcTrunking"]
    assert (
        ecs.list_account_settings(effectiveSettings=True, name="awsvpcTrunking", value="disabled")["settings"]
        == []
    )
    names, token, pages = [], None, 0
    while True:
        page = ecs.list_account_settings(
            effectiveSettings=True, maxResults=4, **({"nextToken": token} if token else {})
        )
        names += [s["name"] for s in page["settings"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert names == list(SETTINGS) and pages == 3
    paged = ecs.get_paginator("list_account_settings").paginate(
        effectiveSettings=True, PaginationConfig={"PageSize": 5}
    )
    assert [s["name"] for p in paged for s in p["settings"]] == list(SETTINGS)


def test_container_insights_is_what_new_clusters_start_with(env: EcsEndpoint) -> None:
    env.ecs.put_account_setting_default(name="containerInsights", value="enhanced")
    cluster = env.ecs.create_cluster(clusterName="fresh")["cluster"]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    own = env.ecs.create_cluster(
        clusterName="own", settings=[{"name": "containerInsights", "value": "disabled"}]
    )
    assert own["cluster"]["settings"] == [{"name": "containerInsights", "value": "disabled"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "containerInsights", "value": "on"}, "value 'on' is invalid for containerInsights"),
        ({"name": "tagResourceAuthorization", "value": "enabled"}, "it must be one of on, off"),
        ({"name": "fargateTaskRetirementWaitPeriod", "value": "3"}, "it must be one of 0, 7, 14"),
        ({"name": "serviceLongArnFormat", "value": "disabled"}, "can no longer be opted out of"),
        (
            {"name": "awsvpcTrunking", "value": "enabled", "principalArn": "arn:aws:iam::111111111111:root"},
            "principalArn",
        ),
        (
            {"name": "awsvpcTrunking", "value": "enabled", "principalArn": "deployer"},
            "principalArn 'deployer' is invalid",
        ),
    ],
)
def test_bad_settings_are_refused_by_name_and_change_nothing(
    env: EcsEndpoint, params: dict[str, Any], message: str
) -> None:
    code, text = error(env.ecs.put_account_setting, **params)
    assert code == "InvalidParameterException" and message in text
    assert env.ecs.list_account_settings()["settings"] == []


def test_other_refusals(env: EcsEndpoint) -> None:
    raw = env.client(parameter_validation=False)
    code, text = error(raw.put_account_setting, name="noSuchSetting", value="enabled")
    assert code in ("InvalidParameterException", "ValidationException") and "noSuchSetting" in text
    code, text = error(env.ecs.delete_account_setting, name="awsvpcTrunking")
    assert code == "InvalidParameterException" and "not set" in text
    code, text = error(env.ecs.list_account_settings, value="enabled")
    assert code == "InvalidParameterException" and "value can be given only together with name" in text
    code, _ = error(env.ecs.list_account_settings, maxResults=11)
    assert code == "InvalidParameterException"
