"""control.attributes over a real SQLite store, in process: what is stored, who is woken, and
what a re-registration keeps. (The same calls through boto3, the CLI and placement:
tests/integration/test_attributes.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portside.config import ServerConfig
from portside.control import attributes
from tests.support.instances import register_instance
from portside.control.plane import ControlPlane
from portside.control.store import Store
from portside.errors import InvalidParameterException, NotFoundError

REGION = "us-east-1"
ARN = f"arn:aws:ecs:{REGION}:000000000000:container-instance/default/" + "a" * 32
UNKNOWN = ARN.replace("a" * 32, "b" * 32)


@pytest.fixture
def plane(tmp_path: Path) -> Any:
    cfg = ServerConfig(state_dir=tmp_path, api_port=0, extra={"cluster": "default"})
    store = Store(tmp_path / "portside.db")
    plane = ControlPlane(cfg, store, ARN)
    register_instance(plane)
    yield plane
    store.close()


def _stored(plane: ControlPlane) -> list[dict[str, str]]:
    [body] = plane.store.list_container_instances(REGION, "default")
    return list(body["attributes"])


def _woken(plane: ControlPlane) -> list[str]:
    topics: list[str] = []
    plane.watchers.append(topics.append)
    return topics


def test_put_and_delete_store_the_attributes_and_wake_the_controllers(plane: ControlPlane) -> None:
    topics = _woken(plane)
    attributes.put_attributes(
        plane, REGION, {"attributes": [{"name": "stack", "value": "blue", "targetId": ARN}]}
    )
    assert _stored(plane)[-1] == {"name": "stack", "value": "blue"}
    assert topics == ["instances"]
    attributes.delete_attributes(plane, REGION, {"attributes": [{"name": "stack", "targetId": ARN}]})
    assert {"name": "stack", "value": "blue"} not in _stored(plane)
    assert topics == ["instances", "instances"]


def test_a_refused_or_empty_change_stores_nothing_and_wakes_no_one(plane: ControlPlane) -> None:
    before = _stored(plane)
    topics = _woken(plane)
    with pytest.raises(NotFoundError):
        attributes.put_attributes(
            plane, REGION,
            {"attributes": [{"name": "a", "targetId": ARN}, {"name": "b", "targetId": UNKNOWN}]},
        )  # fmt: skip
    with pytest.raises(InvalidParameterException):
        attributes.put_attributes(
            plane, REGION, {"attributes": [{"name": "a", "targetId": ARN}, {"name": "b c"}]}
        )
    assert attributes.delete_attributes(plane, REGION, {"attributes": [{"name": "a", "targetId": ARN}]}) == {
        "attributes": []
    }
    assert _stored(plane) == before
    assert topics == []


def test_re_registration_keeps_custom_attributes_and_refreshes_built_in_ones(plane: ControlPlane) -> None:
    attributes.put_attributes(
        plane,
        REGION,
        {
            "attributes": [
                {"name": "stack", "value": "blue", "targetId": ARN},
                {"name": "tier", "targetId": ARN},
            ]
        },
    )
    [body] = plane.store.list_container_instances(REGION, "default")
    body["attributes"].insert(0, {"name": "ecs.retired-capability"})  # what an older server registered
    plane.store.put_container_instance(REGION, "default", body)
    again = register_instance(plane)
    assert again["attributes"] == _stored(plane)
    assert _stored(plane)[-2:] == [{"name": "stack", "value": "blue"}, {"name": "tier"}]
    assert {"name": "ecs.retired-capability"} not in _stored(plane)
    assert {"name": "ecs.os-type", "value": "linux"} in _stored(plane)
