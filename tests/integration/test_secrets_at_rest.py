"""Secrets at rest: sealed in the store with a key kept outside it (control/secrets_key.py, docs/secrets.md).

A SecureString and a secret are put through the API; neither the SQLite database file nor its
-wal holds their plaintext. The key file is created owner-only at the first start and kept
across restarts; a key file others may read is refused, naming it; a replica with another key
than the one the store's secrets were sealed with is refused at start, saying so.
"""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import remove_server_containers
from tests.support.server import PortsideProcess
from tests.support.waiting import eventually


def _put_both(server: PortsideProcess, secure: str, secret: str) -> None:
    server.client("ssm").put_parameter(Name="/rest/secure", Value=secure, Type="SecureString")
    server.client("secretsmanager").create_secret(Name="rest/secret", SecretString=secret)


def test_plaintext_is_in_neither_the_database_nor_its_wal(tmp_path: Path) -> None:
    server = PortsideProcess(tmp_path / "state", "--firewall", "off")
    server.start()
    secure, secret = f"secure-{uuid.uuid4().hex}", f"secret-{uuid.uuid4().hex}"
    try:
        _put_both(server, secure, secret)
        assert server.client("ssm").get_parameter(Name="/rest/secure", WithDecryption=True)["Parameter"]["Value"] == secure
        files = [p for p in (tmp_path / "state").iterdir() if p.name.startswith("portside.db")]
        if "--store" not in server.extra_args:  # SQLite: the database and its write-ahead log are files here
            assert {p.name for p in files} >= {"portside.db", "portside.db-wal"}
            assert any(b"/rest/secure" in p.read_bytes() for p in files)  # the search finds what is stored
        else:  # PostgreSQL: every row of every table, as text
            dump = _postgres_dump(server.extra_args[server.extra_args.index("--store") + 1])
            assert "/rest/secure" in dump
            assert secure not in dump and secret not in dump
        for path in (tmp_path / "state").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secure.encode() not in data and secret.encode() not in data, path
    finally:
        server.stop()


def _postgres_dump(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return "\n".join(str(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"'))


def test_the_key_file_is_created_owner_only_and_kept_across_restarts(tmp_path: Path) -> None:
    server = PortsideProcess(tmp_path / "state", "--firewall", "off", umask=0o022)
    server.start()
    try:
        _put_both(server, "kept", "kept too")
        key_file = tmp_path / "state" / "secrets.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(base64.b64decode(key_file.read_text().strip())) == 32
        key = key_file.read_bytes()
        server.stop()
        server.start()
        assert key_file.read_bytes() == key  # never overwritten
        assert server.client("ssm").get_parameter(Name="/rest/secure", WithDecryption=True)["Parameter"]["Value"] == "kept"
        assert server.client("secretsmanager").get_secret_value(SecretId="rest/secret")["SecretString"] == "kept too"
    finally:
        server.stop()


def _key_file(path: Path, mode: int) -> Path:
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    path.chmod(mode)
    return path


def _refused(server: PortsideProcess) -> str:
    server.start(wait=False)
    assert server.wait_exit(60) != 0
    return server.log()


def test_a_key_file_others_may_read_is_refused_by_name(tmp_path: Path) -> None:
    shared = _key_file(tmp_path / "shared.key", 0o640)
    log = _refused(PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file", str(shared)))
    assert f"secrets key file {shared} has mode 640" in log
    assert not (tmp_path / "state" / "portside.db").exists()  # refused before the store was opened


def test_a_replica_with_another_key_is_refused_at_start(tmp_path: Path) -> None:
    first = PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file",
                            str(_key_file(tmp_path / "one.key", 0o600)))
    first.start()
    try:
        _put_both(first, "sealed with one", "also one")
    finally:
        first.stop()
    other = _key_file(tmp_path / "two.key", 0o600)
    log = _refused(PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file", str(other)))
    assert f"secrets key file {other} is not the key this store's secrets were sealed with" in log
    again = PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file", str(tmp_path / "one.key"))
    again.start()
    try:
        assert again.client("secretsmanager").get_secret_value(SecretId="rest/secret")["SecretString"] == "also one"
    finally:
        again.stop()


@pytest.mark.parametrize("content", ["not base64 at all!", base64.b64encode(b"short").decode()])
def test_a_malformed_key_file_is_refused(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text(content)
    bad.chmod(0o600)
    log = _refused(PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file", str(bad)))
    assert f"secrets key file {bad}" in log


def test_a_missing_key_file_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    log = _refused(PortsideProcess(tmp_path / "state", "--firewall", "off", "--secrets-key-file", str(missing)))
    assert f"secrets key file {missing} does not exist" in log
    assert not missing.exists()


def _execute(server: PortsideProcess, sql: str) -> None:
    """Run ``sql`` on the server's store (stopped), SQLite file or PostgreSQL database alike."""
    if "--store" in server.extra_args:
        import psycopg

        with psycopg.connect(server.extra_args[server.extra_args.index("--store") + 1], autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
    else:
        import sqlite3

        with sqlite3.connect(server.state_dir / "portside.db") as conn:
            conn.execute(sql)


def test_a_value_moved_onto_another_record_does_not_open(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    """Each value is sealed for its own record: copied onto another row (a tampered database), it is
    refused by the API, and a task that uses it fails to start, saying why, while others still poll."""
    server = PortsideProcess(tmp_path / "state")
    server.start()
    try:
        ssm = server.client("ssm")
        ssm.put_parameter(Name="/moved/from", Value="from", Type="SecureString")
        ssm.put_parameter(Name="/moved/to", Value="to", Type="SecureString")
        server.stop()
        _execute(server, "UPDATE ssm_parameters SET value = (SELECT value FROM ssm_parameters WHERE name = '/moved/from') "
                         "WHERE name = '/moved/to'")
        server.start()
        ssm = server.client("ssm")
        with pytest.raises(ClientError) as info:
            ssm.get_parameter(Name="/moved/to", WithDecryption=True)
        assert "does not open with the key" in info.value.response["Error"]["Message"]
        assert ssm.get_parameter(Name="/moved/from", WithDecryption=True)["Parameter"]["Value"] == "from"
        ecs = server.client()
        definition = {"name": "app", "image": busybox_image, "memory": 32, "command": ["sleep", "60"],
                      "secrets": [{"name": "X", "valueFrom": "/moved/to"}]}
        td = ecs.register_task_definition(family="moved", containerDefinitions=[definition])["taskDefinition"]
        arn = ecs.run_task(taskDefinition=td["taskDefinitionArn"])["tasks"][0]["taskArn"]

        def stopped() -> dict[str, Any] | None:
            task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
            return task if task["lastStatus"] == "STOPPED" else None

        task = eventually(stopped, timeout=60, what="the task stopped")
        assert task["stopCode"] == "TaskFailedToStart"
        assert task["stoppedReason"].startswith("ResourceInitializationError: unable to read the task's secrets")
    finally:
        server.stop()
        remove_server_containers(docker_client, server)
