"""Build hook: compile the proxy's per-request path with mypyc, from the same Python source.

Everything else about the package is in pyproject.toml. The modules in ``portside.proxy.HOT_PATH`` are
plain, typed Python; when mypyc (a build requirement) and a C compiler are at hand they
are also built as C extensions, which halves the interpreter's share of each proxied
request. Nothing depends on it: ``PORTSIDE_COMPILE=0`` skips it, a failed compile only
warns, and at run time ``portside.proxy`` falls back to the Python source whenever the
compiled modules are missing, stale or partial (see ``portside/proxy/__init__.py``).

mypy is pinned in pyproject.toml: mypyc 1.13 compiled ``(bytes % tuple) + bytes`` without
releasing the formatted bytes (two blocks leaked per response); tests/unit/test_proxy_memory.py
fails on such a build.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import sys
from pathlib import Path

from setuptools import setup


def hot_path() -> tuple[str, ...]:
    """``portside.proxy.HOT_PATH``, read from its source (the package is not importable while it builds)."""
    tree = ast.parse(Path("src/portside/proxy/__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["HOT_PATH"]:
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("setup.py: src/portside/proxy/__init__.py defines no HOT_PATH")


# Why the last install did not compile (mypy's own errors included), for ``portside.proxy.FALLBACK_REASON``:
# pip hides a build's output, and a type error anywhere the hot path imports would otherwise pass unseen.
COMPILE_ERROR = Path("src/portside/proxy/_compile_error.txt")


def compiled_modules() -> list:
    COMPILE_ERROR.unlink(missing_ok=True)
    if os.environ.get("PORTSIDE_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return refused("mypyc is not installed")
    sources = [f"src/portside/proxy/{name}.py" for name in hot_path()]
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # mypy prints its errors there
            extensions = mypycify(["--ignore-missing-imports", *sources], opt_level="3")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever mypyc refuses, install the pure-Python package
        return refused(f"mypyc refused it: {said.getvalue().strip() or exc}")
    for extension in extensions:
        extension.optional = True  # no C compiler: warn and install the pure-Python package
    record_sources(sources)
    return extensions


def refused(why: str) -> list:
    COMPILE_ERROR.write_text(why + "\n")
    print(f"setup.py: the proxy's hot path is not compiled ({why}); it runs as pure Python", file=sys.stderr)
    return []


def record_sources(sources: list[str]) -> None:
    """Write what was compiled, so ``portside.proxy`` can tell a source edited since (by content)."""
    digests = {Path(path).stem: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in sources}
    Path("src/portside/proxy/_compiled_from.py").write_text(
        '"""Written by setup.py when it compiled the hot path: the SHA-256 of each source it compiled."""\n\n'
        f"DIGESTS = {digests!r}\n"
    )


setup(ext_modules=compiled_modules())
