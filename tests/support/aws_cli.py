"""The AWS CLI v1 as tests run it: ``python -m awscli <service> ...`` against one portside server,
never through PATH and with no user configuration, credentials or pager."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.server import PortsideProcess


class AwsCli:
    def __init__(self, server: PortsideProcess, tmp_path: Path, service: str, region: str = "us-east-1") -> None:
        self.service = service
        self.base = [sys.executable, "-m", "awscli", service, "--endpoint-url", server.endpoint,
                     "--region", region, "--output", "json"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_CONFIG_FILE=str(tmp_path / "no-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"), AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, env=self.env, timeout=90, check=False)

    def __call__(self, *args: str) -> Any:
        """The JSON answer of a command that must succeed (None when it prints nothing)."""
        done = self.run(*args)
        assert done.returncode == 0, f"aws {self.service} {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None

    def fails(self, code: str, *args: str) -> str:
        """The error text of a command that must fail with the AWS error ``code``."""
        done = self.run(*args)
        assert done.returncode != 0 and f"({code})" in done.stderr, done.stderr
        return done.stderr
