"""An API reachable from other hosts demands SigV4 signatures; loopback does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import OutsideHost
from tests.support.server import PortsideProcess, free_port

pytestmark = [pytest.mark.docker, pytest.mark.netns]

KEY, SECRET = "AKIDPORTSIDETEST", "s3cr3t/portside+key"

CALL = """
import json, sys, boto3, botocore.exceptions
endpoint, key, secret, region = sys.argv[1:5]
ecs = boto3.client("ecs", endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
                   aws_secret_access_key=secret, config=boto3.session.Config(retries={"max_attempts": 1}))
try:
    print(json.dumps({"ok": ecs.list_clusters()["clusterArns"]}))
except botocore.exceptions.ClientError as exc:
    print(json.dumps({"status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                      "code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"]}))
"""


def _call_from(outside: OutsideHost, endpoint: str, key: str, secret: str, region: str = "us-east-1") -> dict[str, Any]:
    result = outside.run(sys.executable, "-c", CALL, endpoint, key, secret, region)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_remote_peers_must_sign_and_loopback_need_not(tmp_path: Path, outside: OutsideHost, docker_client: Any) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    server = PortsideProcess(tmp_path / "state", "--credentials", str(credentials))
    server.extra_args += ["--api", f"0.0.0.0:{server.port}"]  # the last --api wins: every address
    try:
        server.start()
        remote = f"http://{outside.host_ip}:{server.port}"
        assert "ok" in _call_from(outside, remote, KEY, SECRET)
        assert _call_from(outside, remote, KEY, SECRET, region="eu-west-1") == {"ok": []}  # region from the scope
        wrong = _call_from(outside, remote, KEY, "not-the-secret")
        assert (wrong["status"], wrong["code"]) == (403, "InvalidSignatureException")
        unknown = _call_from(outside, remote, "AKIDUNKNOWN", SECRET)
        assert (unknown["status"], unknown["code"]) == (403, "UnrecognizedClientException")
        # Loopback is trusted: any credentials work there.
        assert server.client().list_clusters()["clusterArns"]
    finally:
        server.stop()


def test_non_loopback_api_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portside.cli.main", "server", "--api", f"0.0.0.0:{free_port()}", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "--credentials" in result.stderr
    assert "Traceback" not in result.stderr
