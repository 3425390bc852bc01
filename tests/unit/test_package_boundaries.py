"""The structure issue 11 asks for, checked on the source: ``core/`` imports nothing that does I/O;
the agent imports nothing of the control plane, the API or the proxy (it talks to the control plane only through ``agent/link.py``'s
protocol), and the control plane reads no agent's memory (no ``HostAgent`` in ``control/`` or
``api/`` beyond the host doctor, which examines the server's own host)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import portside

SRC = Path(portside.__file__).resolve().parent
FORBIDDEN_FOR_AGENT = ("portside.control", "portside.api", "portside.proxy", "portside.server")


def imported_modules(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


#: ``core/`` is pure decision logic: it imports no part of portside that does I/O.
FORBIDDEN_FOR_CORE = (*FORBIDDEN_FOR_AGENT, "portside.agent", "portside.cli", "portside.lb_node")


def violations(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text()):
            if module.startswith(forbidden):
                out.append(f"{path.relative_to(root)}:{line}: imports {module}")
    return out


def agent_violations(root: Path) -> list[str]:
    return violations(root, "agent", FORBIDDEN_FOR_AGENT)


def test_the_agent_imports_nothing_of_the_control_plane_api_or_proxy() -> None:
    assert agent_violations(SRC) == []


def test_core_imports_nothing_that_does_io() -> None:
    assert violations(SRC, "core", FORBIDDEN_FOR_CORE) == []


def test_the_scan_finds_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "bad.py").write_text("from portside.control.store import Store\nimport portside.api.sigv4\n")
    assert agent_violations(tmp_path) == [
        "agent/bad.py:1: imports portside.control.store", "agent/bad.py:2: imports portside.api.sigv4",
    ]


@pytest.mark.parametrize("package", ["control", "api"])
def test_the_control_plane_reads_no_agent_memory(package: str) -> None:
    users = [
        str(path.relative_to(SRC)) for path in sorted((SRC / package).rglob("*.py"))
        if "HostAgent" in path.read_text() or ".agent.tasks" in path.read_text()
    ]
    assert users == (["control/doctor.py"] if package == "control" else [])
