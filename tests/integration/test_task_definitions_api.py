"""Task definitions through the real API: real files round-trip, malformed ones are refused and store nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.signing import ECS_TARGET, JSON_CONTENT_TYPE, signed_post
from tests.unit.test_taskdef import EXACT, NAMED

pytestmark = pytest.mark.docker

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures" / "taskdefs").glob("*.json"))
NORMALISED = {"cpu", "memory"}  # task-level sizes are normalised to units / MiB as ECS does


def raw_call(endpoint: str, action: str, body: Any) -> tuple[int, dict[str, Any]]:
    """POST any JSON to the ECS endpoint, signed, as a raw HTTP client could; returns (status, parsed body)."""
    headers = {"X-Amz-Target": f"{ECS_TARGET}{action}", "Content-Type": JSON_CONTENT_TYPE}
    reply = signed_post(endpoint, json.dumps(body).encode(), headers)
    return reply.status, json.loads(reply.body)


def _stored_families(ecs: Any) -> list[str]:
    return ecs.list_task_definition_families(status="ALL")["families"]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_real_task_definition_files_describe_back_unchanged(ecs: Any, path: Path) -> None:
    submitted = json.loads(path.read_text())
    registered = ecs.register_task_definition(**submitted)
    described = ecs.describe_task_definition(taskDefinition=registered["taskDefinition"]["taskDefinitionArn"], include=["TAGS"])
    body = described["taskDefinition"]
    for key, value in submitted.items():
        if key == "tags":
            assert described["tags"] == value
        elif key in NORMALISED:
            assert body[key].isdigit()
        else:
            assert _contains(body[key], value), f"{key} changed: {value!r} -> {body[key]!r}"
    assert body["status"] == "ACTIVE" and body["revision"] >= 1
    assert body["taskDefinitionArn"].endswith(f"task-definition/{submitted['family']}:{body['revision']}")


def _contains(stored: Any, submitted: Any) -> bool:
    """Every submitted field is there unchanged; the API may add echoed defaults beside them."""
    if isinstance(submitted, dict):
        return isinstance(stored, dict) and all(k in stored and _contains(stored[k], v) for k, v in submitted.items())
    if isinstance(submitted, list):
        return isinstance(stored, list) and len(stored) == len(submitted) and all(map(_contains, stored, submitted))
    return bool(stored == submitted)


CASES = [pytest.param(p.values[0], p.values[1], id=p.id) for p in EXACT] + [
    pytest.param(request, fragment, id=name) for name, request, fragment in NAMED if isinstance(request, dict)
]


@pytest.mark.parametrize(("request_", "fragment"), CASES)
def test_malformed_definitions_are_refused_and_store_nothing(
    portside: Any, ecs: Any, request_: dict[str, Any], fragment: str
) -> None:
    before = _stored_families(ecs)
    status, error = raw_call(portside.endpoint, "RegisterTaskDefinition", request_)
    assert status == 400
    assert error["__type"] in ("ClientException", "InvalidParameterException", "SerializationException")
    if error["__type"] == "ClientException":
        assert fragment in error["message"]
    assert error["message"] and "Traceback" not in error["message"]
    assert _stored_families(ecs) == before


def test_there_are_more_than_twenty_malformed_cases() -> None:
    assert len(CASES) > 20


def test_revisions_list_and_deregister(ecs: Any, busybox_image: str) -> None:
    definition = {"family": "revs", "containerDefinitions": [{"name": "a", "image": busybox_image, "memory": 8}]}
    arns = [ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"] for _ in range(3)]
    assert [a.rsplit(":", 1)[1] for a in arns] == ["1", "2", "3"]
    assert ecs.describe_task_definition(taskDefinition="revs")["taskDefinition"]["revision"] == 3
    assert ecs.list_task_definitions(familyPrefix="revs", sort="DESC")["taskDefinitionArns"] == arns[::-1]
    ecs.deregister_task_definition(taskDefinition="revs:3")
    assert ecs.describe_task_definition(taskDefinition="revs")["taskDefinition"]["revision"] == 2
    inactive = ecs.list_task_definitions(familyPrefix="revs", status="INACTIVE")["taskDefinitionArns"]
    assert inactive == [arns[2]]
    with pytest.raises(ecs.exceptions.ClientException):
        ecs.describe_task_definition(taskDefinition="revs:9")
