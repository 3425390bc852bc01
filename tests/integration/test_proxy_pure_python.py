"""The proxy's tests again with its hot path run from source, as installs without a C compiler run it.

The default run uses whatever this install has (compiled by mypyc, normally); this runs
tests/integration/test_proxy.py in a child pytest with ``PORTSIDE_PURE_PYTHON=1``, so both
forms of the same code are exercised on every run. The server also says which form it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import portside.proxy
from tests.support.server import PortsideProcess

ROOT = Path(__file__).resolve().parents[2]


def test_the_proxy_tests_pass_with_the_hot_path_run_from_source() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_proxy.py"],
        cwd=ROOT,
        env={**os.environ, "PORTSIDE_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "skipped" not in done.stdout.splitlines()[-1]


def test_the_server_says_which_form_of_the_hot_path_it_runs(tmp_path: Path) -> None:
    for pure, compiled in (("0", portside.proxy.COMPILED), ("1", False)):
        server = PortsideProcess(
            tmp_path / f"state-{pure}", "--firewall", "off", env={"PORTSIDE_PURE_PYTHON": pure}
        )
        server.start()
        try:
            with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as reply:
                assert f"\nportside_proxy_compiled {int(compiled)}\n" in reply.read().decode()
            expected = "proxy hot path: compiled by mypyc" if compiled else "proxy hot path: pure Python ("
            assert expected in server.log()
        finally:
            server.stop()
