"""The suite runs from the README's command alone: no test may find portside's CLI on PATH.

The README's test command runs `.venv/bin/python -m pytest` without `.venv/bin` on PATH, so a
test that runs `portside ...` passes on a developer's shell and fails on a fresh machine.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLI_FROM_PATH = re.compile(r"""\[\s*["']portside["']\s*,|["']portside\s+\w+""")


def test_no_test_runs_the_portside_cli_from_path() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in TESTS.rglob("*.py") if path != Path(__file__)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CLI_FROM_PATH.search(line) and ("subprocess" in line or "run(" in line or "Popen" in line or line.strip().startswith("["))
    ]
    assert not offenders, "call it as [sys.executable, '-m', 'portside.cli.main', ...]:\n" + "\n".join(offenders)
