"""The key that seals secrets at rest (control/secrets_key.py): creation, refusal, sealing, the key check."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from portside.control.secrets_key import SecretsKey, SecretsKeyError, record_aad


def test_created_owner_only_whatever_the_umask_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.key"
    old = os.umask(0)
    try:
        key = SecretsKey.load_or_create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    again = SecretsKey.load_or_create(path)
    assert path.read_bytes() == before
    assert again.fingerprint() == key.fingerprint()
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temporary file left behind


def test_sealed_values_open_only_for_their_own_record_and_key(tmp_path: Path) -> None:
    key = SecretsKey.load_or_create(tmp_path / "one.key")
    other = SecretsKey.load_or_create(tmp_path / "two.key")
    aad = record_aad("ssm-parameter", "us-east-1", "/db", "1")
    sealed = key.seal(aad, "hunter2")
    assert "hunter2" not in sealed and sealed != key.seal(aad, "hunter2")  # a fresh nonce every time
    assert key.open(aad, sealed) == "hunter2"
    with pytest.raises(SecretsKeyError, match="does not open"):
        key.open(record_aad("ssm-parameter", "us-east-1", "/db", "2"), sealed)  # moved to another version
    with pytest.raises(SecretsKeyError, match="does not open"):
        other.open(aad, sealed)
    with pytest.raises(SecretsKeyError, match="not in a known sealed format"):
        key.open(aad, "hunter2")


def test_the_key_check_names_the_file_of_a_wrong_key(tmp_path: Path) -> None:
    key = SecretsKey.load_or_create(tmp_path / "one.key")
    other = SecretsKey.load_or_create(tmp_path / "two.key")
    key.check_against(None)
    key.check_against(key.fingerprint())
    with pytest.raises(SecretsKeyError, match=f"secrets key file {tmp_path / 'two.key'} is not the key"):
        other.check_against(key.fingerprint())


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (base64.b64encode(bytes(32)).decode(), 0o604, "has mode 604"),
        (base64.b64encode(bytes(32)).decode(), 0o640, "has mode 640"),
        ("***", 0o600, "does not hold a base64-encoded key"),
        (base64.b64encode(bytes(16)).decode(), 0o600, "must be 32 bytes"),
    ],
)
def test_unusable_key_files_are_refused_by_name(tmp_path: Path, content: str, mode: int, words: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(SecretsKeyError, match=words) as info:
        SecretsKey.load(path)
    assert str(path) in info.value.message


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(SecretsKeyError, match="not a regular file"):
        SecretsKey.load(tmp_path)
