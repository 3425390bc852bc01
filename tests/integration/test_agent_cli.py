"""`portside agent` refuses bad flags, naming each, with exit 1, before it touches Docker or its state.

Run as ``sys.executable -m portside.cli.main agent`` in a subprocess. Docker is pointed at a socket
that does not exist: a refusal that came after the flags were accepted would name Docker, not the
flag, and the state directory (made by the agent once it starts) must not exist afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = {
    "--server": "http://127.0.0.1:9",
    "--address": "127.0.0.1",
    "--instance-id": "i-0a1b2c3d4e5f60718",
}


def agent(tmp_path: Path, *flags: str, **given: str) -> subprocess.CompletedProcess[str]:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIAAGENT\naws_secret_access_key = secret\n")
    chosen = {**GOOD, **{f"--{k.replace('_', '-')}": v for k, v in given.items()}}
    argv = [
        sys.executable,
        "-m",
        "portside.cli.main",
        "agent",
        "--credentials",
        str(credentials),
        "--state-dir",
        str(tmp_path / "state"),
        "--docker-host",
        f"unix://{tmp_path / 'no-docker.sock'}",
        "--firewall",
        "off",
    ]
    for flag, value in chosen.items():
        argv += [flag, value]
    argv += list(flags)
    return subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    ("given", "flags", "named"),
    [
        ({"address": "10.0.0.256"}, (), "--address 10.0.0.256:"),
        ({"address": "host-1"}, (), "--address host-1:"),
        ({}, ("--attribute", "stack"), "--attribute stack: must be NAME=VALUE"),
        ({}, ("--attribute", "=blue"), "--attribute =blue: must be NAME=VALUE"),
        (
            {},
            ("--attribute", "ecs.os-type=windows"),
            "--attribute ecs.os-type=windows: must be NAME=VALUE, NAME not starting with ecs.",
        ),
        (
            {},
            ("--attribute", "com.amazonaws.ecs.capability.x=1"),
            "--attribute com.amazonaws.ecs.capability.x=1:",
        ),
        (
            {"server": "ftp://127.0.0.1:21"},
            (),
            "--server ftp://127.0.0.1:21: must be an http:// or https:// URL",
        ),
        (
            {"server": "http://127.0.0.1:9,127.0.0.1:10"},
            (),
            "--server 127.0.0.1:10: must be an http:// or https:// URL",
        ),
        ({"instance_id": "host-1"}, (), "--instance-id host-1: must be i- and up to 40 letters or digits"),
        ({"instance_id": "i-" + "a" * 41}, (), "--instance-id i-aaaa"),
        ({"instance_id": "i-"}, (), "--instance-id i-: must be"),
        (
            {"instance_id": "i-caf\u00e9"},
            (),
            "--instance-id i-caf\u00e9: must be",
        ),  # the API refuses what is not ASCII
    ],
    ids=[
        "address-bad-ip",
        "address-name",
        "attribute-no-equals",
        "attribute-no-name",
        "attribute-ecs",
        "attribute-amazon-ecs",
        "server-ftp",
        "server-second-url",
        "instance-id-name",
        "instance-id-long",
        "instance-id-empty",
        "instance-id-not-ascii",
    ],
)
def test_a_bad_flag_is_refused_naming_it_before_docker(
    tmp_path: Path, given: dict[str, str], flags: tuple[str, ...], named: str
) -> None:
    result = agent(tmp_path, *flags, **given)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("portside: ") and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "docker" not in result.stderr.lower()
    assert not (tmp_path / "state").exists()


def test_good_flags_get_past_the_checks_to_docker(tmp_path: Path) -> None:
    """The control case: the same command with good flags does reach Docker (and fails there, naming it)."""
    result = agent(tmp_path, "--attribute", "stack=blue")
    assert result.returncode != 0
    assert (
        "--address" not in result.stderr
        and "--attribute" not in result.stderr
        and "--instance-id" not in result.stderr
    )
    assert "no-docker.sock" in result.stderr or "docker" in result.stderr.lower(), result.stderr[-2000:]


def test_a_state_file_that_does_not_read_is_named_before_docker(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "agent.json").write_text("[1, 2, 3]")
    result = agent(tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"portside: agent state {state / 'agent.json'} cannot be read"), (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert (state / "agent.json").read_text() == "[1, 2, 3]"  # left for its owner to look at


def test_a_profile_missing_from_the_credentials_is_named(tmp_path: Path) -> None:
    result = agent(tmp_path, "--profile", "agent")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        f"portside: --credentials {tmp_path / 'credentials'}: no [agent] section"
    ), result.stderr
    assert not (tmp_path / "state").exists()


def test_the_servers_own_agent_names_a_state_file_that_does_not_read(tmp_path: Path) -> None:
    """`portside server` runs the same agent over the same state file, and refuses it the same way."""
    from tests.support.server import free_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "agent.json").write_text('{"revision": "forty-one"}')
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}
    argv = [sys.executable, "-m", "portside.cli.main", "server", "--api", f"127.0.0.1:{free_port()}"]
    argv += ["--state-dir", str(state), "--firewall", "off"]
    result = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env
    )
    assert result.returncode == 1, result.stderr
    assert f"portside: agent state {state / 'agent.json'} cannot be read" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
