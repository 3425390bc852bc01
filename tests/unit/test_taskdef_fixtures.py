"""Real task definitions from public repositories (tests/fixtures/taskdefs, see SOURCES.md) register."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from portside.core.taskdef import network_mode, parse_task_cpu, parse_task_memory, validate_registration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "taskdefs"
FILES = sorted(FIXTURES.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def assert_unchanged(submitted: Any, stored: Any, path: str) -> None:
    if isinstance(submitted, dict):
        assert isinstance(stored, dict), path
        for key, value in submitted.items():
            assert key in stored, f"{path}.{key} was dropped"
            assert_unchanged(value, stored[key], f"{path}.{key}")
    elif isinstance(submitted, list):
        assert isinstance(stored, list) and len(stored) == len(submitted), path
        for i, (a, b) in enumerate(zip(submitted, stored, strict=True)):
            assert_unchanged(a, b, f"{path}[{i}]")
    else:
        assert type(submitted) is type(stored) and submitted == stored, path


def test_there_are_enough_fixtures() -> None:
    assert len(FILES) >= 22


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_fixture_registers_with_every_field_kept(path: Path) -> None:
    request = load(path)
    before = copy.deepcopy(request)
    content = validate_registration(request)
    assert request == before
    submitted = {k: v for k, v in request.items() if k not in ("tags", "cpu", "memory")}
    assert_unchanged(submitted, content, path.stem)
    # The documented exceptions: task size normalised, tags kept apart.
    if "cpu" in request:
        assert content["cpu"] == str(parse_task_cpu(request["cpu"]))
    if "memory" in request:
        assert content["memory"] == str(parse_task_memory(request["memory"]))
    assert "tags" not in content


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_fixture_is_register_task_definition_input(path: Path) -> None:
    """botocore would send it as is: no output-only or misspelt members, right types."""
    shape = get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(load(path), shape)
    assert not report.has_errors(), report.generate_report()


def test_every_fixture_has_a_source() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    for path in FILES:
        assert f"`{path.name}`" in sources, path.name


def _count(predicate: Any) -> int:
    return sum(1 for path in FILES if predicate(load(path)))


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = doc["containerDefinitions"]
    return containers


def test_the_fixtures_cover_the_shapes_we_care_about() -> None:
    assert _count(lambda d: network_mode(d) == "awsvpc") >= 4
    assert _count(lambda d: "FARGATE" in d.get("requiresCompatibilities", [])) >= 4
    assert (
        _count(
            lambda d: (
                len(_containers(d)) > 1
                and any(k in c for c in _containers(d) for k in ("dependsOn", "links", "volumesFrom"))
            )
        )
        >= 4
    )
    assert _count(lambda d: any("healthCheck" in c for c in _containers(d))) >= 4
    assert _count(lambda d: any("secrets" in c and "logConfiguration" in c for c in _containers(d))) >= 3
    assert (
        _count(
            lambda d: (
                network_mode(d) == "bridge"
                and any(not m.get("hostPort") for c in _containers(d) for m in c.get("portMappings", []))
            )
        )
        >= 3
    )
