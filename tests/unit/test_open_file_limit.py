"""portside.open_file_limit in a child process whose soft limit the test lowers before exec."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from portside import open_file_limit

CHILD = """
import json
from portside import open_file_limit as o
first, second = o.raise_to_hard(), o.raise_to_hard()
print(json.dumps([[first.soft, first.hard, first.raised_from, first.error],
                  [second.soft, second.hard, second.raised_from, second.error]]))
"""


def test_the_soft_limit_is_raised_to_the_hard_limit_once() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"this machine's hard limit ({hard}) leaves nothing to raise")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True,
                          preexec_fn=lower)  # noqa: PLW1509 (only a resource limit is set in the child)
    first, second = json.loads(done.stdout)
    assert first == [hard, hard, 256, ""]
    assert second == [hard, hard, None, ""]  # already at the hard limit: nothing to raise


def test_limits_read_as_people_say_them() -> None:
    assert open_file_limit.text(open_file_limit.UNLIMITED) == "unlimited"
    assert open_file_limit.text(1024) == "1024"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert (open_file_limit.current().soft, open_file_limit.current().hard) == (soft, hard)
