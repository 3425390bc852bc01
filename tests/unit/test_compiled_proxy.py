"""The proxy's hot path runs compiled when the install compiled it, and from source otherwise.

Each case imports a copy of the package in a fresh interpreter, so the choice made at import
time is the one under test; the copies carry this install's compiled modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import portside
import portside.proxy

PACKAGE = Path(portside.__file__).parent
SHARED_LIBRARIES = sorted(PACKAGE.parent.glob("*__mypyc*"))  # the compiled group's common code
COMPILED_HERE = portside.proxy.COMPILED

needs_compiled = pytest.mark.skipif(
    not COMPILED_HERE, reason=f"this install's proxy is not compiled: {portside.proxy.FALLBACK_REASON}"
)

PROBE = """
import importlib, json, portside.proxy as p
files = {n: importlib.import_module("portside.proxy." + n).__file__ for n in p.HOT_PATH}
print(json.dumps({"compiled": p.COMPILED, "reason": p.FALLBACK_REASON, "files": files}))
"""


def probe(root: Path, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(root), **env},
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def copy_install(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "portside", ignore=shutil.ignore_patterns("__pycache__"))
    for lib in SHARED_LIBRARIES:
        shutil.copy2(lib, tmp_path / lib.name)
    return tmp_path


@needs_compiled
def test_a_current_compiled_install_runs_the_compiled_modules(tmp_path: Path) -> None:
    seen = probe(copy_install(tmp_path))
    assert seen["compiled"] is True and seen["reason"] is None
    assert all(Path(f).suffix == ".so" and f.startswith(str(tmp_path)) for f in seen["files"].values())


@needs_compiled
def test_asking_for_pure_python_runs_every_module_from_source(tmp_path: Path) -> None:
    seen = probe(copy_install(tmp_path), PORTSIDE_PURE_PYTHON="1")
    assert seen["compiled"] is False and seen["reason"] == "PORTSIDE_PURE_PYTHON=1"
    assert all(f.endswith(".py") for f in seen["files"].values())


@needs_compiled
def test_a_source_edited_since_the_install_makes_every_module_run_from_source(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    edited = root / "portside" / "proxy" / "exchange.py"
    edited.write_text(edited.read_text() + "# an edit\n")
    seen = probe(root)
    assert seen["compiled"] is False
    assert seen["reason"] == "source changed since the last install: exchange.py"
    assert all(f.endswith(".py") for f in seen["files"].values())  # all or none: they call each other


@needs_compiled
@needs_compiled
def test_a_file_touched_but_unchanged_still_runs_compiled(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    os.utime(root / "portside" / "proxy" / "exchange.py")  # a checkout, say: newer, same content
    assert probe(root)["compiled"] is True


@needs_compiled
def test_an_install_without_its_record_of_sources_runs_from_source(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    (root / "portside" / "proxy" / "_compiled_from.py").unlink()
    seen = probe(root)
    assert seen["compiled"] is False and "no record of their sources" in seen["reason"]


@needs_compiled
def test_a_missing_compiled_module_makes_every_module_run_from_source(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    for so in (root / "portside" / "proxy").glob("routes.*.so"):
        so.unlink()
    seen = probe(root)
    assert seen["compiled"] is False and seen["reason"] == "compiled modules missing: routes"
    assert all(f.endswith(".py") for f in seen["files"].values())


@needs_compiled
def test_a_shared_library_that_does_not_load_makes_every_module_run_from_source(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    for lib in SHARED_LIBRARIES:
        (root / lib.name).write_bytes(b"not an ELF file")
    seen = probe(root)
    assert seen["compiled"] is False and seen["reason"].startswith("compiled modules do not load: ")
    assert all(f.endswith(".py") for f in seen["files"].values())


def test_an_install_without_compiled_modules_runs_from_source(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    for so in (root / "portside" / "proxy").glob("*.so"):
        so.unlink()
    seen = probe(root)
    assert seen["compiled"] is False and seen["reason"].startswith("not compiled at install")
    assert all(f.endswith(".py") for f in seen["files"].values())


def test_an_install_mypyc_refused_says_why(tmp_path: Path) -> None:
    root = copy_install(tmp_path)
    for so in (root / "portside" / "proxy").glob("*.so"):
        so.unlink()
    for lib in SHARED_LIBRARIES:
        (root / lib.name).unlink()
    error = 'mypyc refused it: portside/core/task.py:189: error: Incompatible types in assignment'
    (root / "portside" / "proxy" / "_compile_error.txt").write_text(error + "\n")
    seen = probe(root)
    assert seen["compiled"] is False and seen["reason"] == f"not compiled at install: {error}"
