"""The L7 data plane, and the choice between its compiled and its pure-Python hot path.

The modules in ``HOT_PATH`` are plain, typed Python. An install with mypyc and a C
compiler also builds them as C extensions (setup.py), which Python's importer prefers
to the source. They are one unit (compiled code of one module calls another's
directly), so this package uses all of them or none, and falls back to the source
when any is missing or fails to load, when a ``.py`` differs from the source it was
compiled from (an edit since the last install; setup.py records their SHA-256 in
``_compiled_from.py``), or when ``PORTSIDE_PURE_PYTHON=1`` asks for it. ``COMPILED``
says which one runs and ``FALLBACK_REASON`` why not, when not.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

# In dependency order: each imports only those before it at module level.
HOT_PATH = ("http", "upstream", "targets", "exchange", "routes", "client")
PURE_PYTHON_ENV = "PORTSIDE_PURE_PYTHON"


def _compiled_files(here: Path) -> dict[str, Path]:
    found = {}
    for name in HOT_PATH:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = here / f"{name}{suffix}"
            if path.exists():
                found[name] = path
                break
    return found


def _why_not_compiled(here: Path, compiled: dict[str, Path]) -> str | None:
    """None when the compiled hot path is whole and current; else why the source runs instead."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return f"{PURE_PYTHON_ENV}=1"
    if not compiled:
        error = here / "_compile_error.txt"  # written by setup.py when mypyc was missing or refused
        if error.exists():
            return f"not compiled at install: {error.read_text().strip()}"
        return "not compiled at install (no C compiler, or PORTSIDE_COMPILE=0)"
    missing = [name for name in HOT_PATH if name not in compiled]
    if missing:
        return f"compiled modules missing: {', '.join(missing)}"
    try:
        from portside.proxy._compiled_from import DIGESTS  # written by setup.py as it compiled
    except ImportError:
        return "compiled modules carry no record of their sources: reinstall"
    stale = [
        name
        for name in HOT_PATH
        if DIGESTS.get(name) != hashlib.sha256((here / f"{name}.py").read_bytes()).hexdigest()
    ]
    if stale:
        return f"source changed since the last install: {', '.join(f'{n}.py' for n in stale)}"
    return None


def _load_source(here: Path) -> None:
    """Import every hot-path module from its ``.py``, before anything imports the extensions."""
    for name in HOT_PATH:
        full = f"{__name__}.{name}"
        spec = importlib.util.spec_from_file_location(full, here / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        globals()[name] = module


_here = Path(__file__).parent
_compiled = _compiled_files(_here)
FALLBACK_REASON = _why_not_compiled(_here, _compiled)
if FALLBACK_REASON is None:
    try:
        for _name in HOT_PATH:
            importlib.import_module(f"{__name__}.{_name}")
    except ImportError as exc:  # e.g. the shared library of the compiled group is gone
        FALLBACK_REASON = f"compiled modules do not load: {exc}"
        for _name in HOT_PATH:
            sys.modules.pop(f"{__name__}.{_name}", None)
if FALLBACK_REASON is not None and _compiled:
    _load_source(_here)
COMPILED = FALLBACK_REASON is None
