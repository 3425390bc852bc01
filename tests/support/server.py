"""A real portside server in a child process, as a user runs it, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_in(low: int, high: int, step: int = 1) -> int:
    """A TCP port in [low, high) that can be bound on every address now."""
    for port in range(low, high, step):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


#: Gives each new server's ``--store`` (tests/integration/conftest.py sets it when the suite runs on
#: PostgreSQL: ``PORTSIDE_TEST_STORE=postgresql``); None: SQLite in the state dir, the default.
new_store: Callable[[], str] | None = None
#: The database of each state dir, so a server started again on a state dir finds its state.
_stores: dict[Path, str] = {}


class PortsideProcess:
    """``portside server`` on a free loopback port with its own state dir; restartable, killable.

    When the suite runs on PostgreSQL (``new_store``), each server gets a database of its own, kept
    across its restarts, unless its arguments name a ``--store`` already.
    """

    def __init__(
        self, state_dir: Path, *extra_args: str, env: dict[str, str] | None = None, ca_file: Path | None = None,
        umask: int = -1, preexec_fn: Callable[[], None] | None = None, api_host: str = "127.0.0.1",
    ) -> None:
        """``ca_file``: the server runs with --api-tls (in extra_args) and clients trust this CA.
        ``umask``: the server process's umask (-1: inherit this one).
        ``preexec_fn``: runs in the child before exec (e.g. to lower a resource limit).
        ``api_host``: the address the API listens on (not loopback: give --credentials in extra_args)."""
        self.api_host = api_host
        self.state_dir = state_dir
        self.port = free_port()
        self.extra_args = list(extra_args)
        if new_store is not None and "--store" not in self.extra_args:
            key = state_dir.resolve()
            if key not in _stores:
                _stores[key] = new_store()
            self.extra_args += ["--store", _stores[key]]
        self.env = env or {}
        self.ca_file = ca_file
        self.umask = umask
        self.preexec_fn = preexec_fn
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.api_host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "portside.cli.main", "server",
            "--api", f"{self.api_host}:{self.port}", "--state-dir", str(self.state_dir),
            "--task-cleanup-wait", "0", "--stop-timeout", "5", "--resync-interval", "1",
            *self.extra_args,
        ]
        full_env = {**os.environ, **self.env, **(env or {})}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(  # preexec_fn: tests set only a resource limit, no locks taken
                args, stdout=log, stderr=subprocess.STDOUT, env=full_env, umask=self.umask,
                preexec_fn=self.preexec_fn,  # noqa: PLW1509
            )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"portside server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1, context=self.ssl_context()):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"portside server did not answer in {START_TIMEOUT_S} s:\n{self.log()}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""

    def client(self, service: str = "ecs", region: str = "us-east-1", config: Config | None = None, **kwargs: Any) -> Any:
        """A boto3 client for this server; any key works on loopback (``kwargs`` override the test key)."""
        options: dict[str, Any] = {
            "aws_access_key_id": "AKIDTEST",
            "aws_secret_access_key": "secret",
            "config": config or Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=120),
        }
        if self.ca_file:
            options["verify"] = str(self.ca_file)
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region, **(options | kwargs))
