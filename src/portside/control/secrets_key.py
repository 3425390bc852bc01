"""The key that encrypts SecureString parameters and Secrets Manager values at rest.

Theory of operation
-------------------
Secret values are sealed with AES-256-GCM before they reach the store; the key never does. It
lives in a file outside the database: ``secrets.key`` in the state directory, created at the
first start (owner-only, mode 0600), or the file ``--secrets-key-file`` names. Whoever copies
the database without the key file gets ciphertext only; whoever loses the key file loses every
secret (docs/secrets.md: back it up).

- *Creation* is atomic and never overwrites: a temporary file is written (O_EXCL, 0600) and
  synced, then hard-linked to the final name; if another process got there first the link
  fails and that process's key is read instead. A half-written key file can never appear.
- *Loading* refuses a file that its group or others may read or write, naming it, and a file
  that does not hold exactly one base64-encoded 32-byte key.
- *Associated data*: each value is sealed with the kind of record, its region, its name and
  its version bound in (``aad``), so a ciphertext copied onto another row does not open.
- *Key check*: the store keeps the key's fingerprint (an HMAC of a fixed text under the key,
  ``meta.secrets_key_check``). A replica started with a different key is refused at start
  with a message saying so, instead of failing later on every secret it reads.

Sealed text is ``v1:`` + base64(nonce || ciphertext || tag).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portside.errors import PortsideError

__all__ = ["DEFAULT_KEY_FILE", "KEY_FILE_MODE", "SecretsKey", "SecretsKeyError"]

DEFAULT_KEY_FILE = "secrets.key"
KEY_FILE_MODE = 0o600
KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_PREFIX = "v1:"
_CHECK_TEXT = b"portside secrets key check v1"
#: Where the store keeps the fingerprint of the key its secrets are sealed with.
CHECK_META_KEY = "secrets_key_check"


class SecretsKeyError(PortsideError):
    """The key file cannot be used (readable by others, malformed), or it is not the store's key."""


class SecretsKey:
    """One AES-256-GCM key: ``seal`` and ``open`` values, ``fingerprint`` for the store's key check."""

    def __init__(self, key: bytes, path: Path) -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"secrets key file {path}: the key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._key = key
        self.path = path

    @classmethod
    def load_or_create(cls, path: Path) -> SecretsKey:
        """The key in ``path``, created (atomically, 0600) when there is no such file yet."""
        if not path.exists():
            _create(path)
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> SecretsKey:
        """The key in ``path``; SecretsKeyError naming the file when it is missing, shared or malformed."""
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise SecretsKeyError(f"secrets key file {path} is not a regular file")
            if info.st_mode & 0o077:
                raise SecretsKeyError(
                    f"secrets key file {path} has mode {info.st_mode & 0o777:o}: its group or others may read it; "
                    f"make it owner-only (chmod 600 {path})"
                )
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise SecretsKeyError(f"secrets key file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretsKeyError(f"secrets key file {path} cannot be read: {exc}") from exc
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SecretsKeyError(f"secrets key file {path} does not hold a base64-encoded key") from None
        return cls(key, path)

    def fingerprint(self) -> str:
        return hmac.new(self._key, _CHECK_TEXT, hashlib.sha256).hexdigest()

    def check_against(self, stored: str | None) -> None:
        """SecretsKeyError unless ``stored`` (the store's fingerprint, None when it has none) is this key's."""
        if stored is not None and not hmac.compare_digest(stored, self.fingerprint()):
            raise SecretsKeyError(
                f"secrets key file {self.path} is not the key this store's secrets were sealed with "
                "(its fingerprint differs from the store's): every replica must use the same key file; "
                "give the right one with --secrets-key-file"
            )

    def seal(self, aad: str, plaintext: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, aad: str, sealed: str) -> str:
        """The plaintext of ``sealed``; SecretsKeyError when it was sealed under another key or for another record."""
        if not sealed.startswith(SEALED_PREFIX):
            raise SecretsKeyError("a stored secret value is not in a known sealed format")
        try:
            raw = base64.b64decode(sealed[len(SEALED_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise SecretsKeyError("a stored secret value is not valid base64") from None
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise SecretsKeyError(
                f"a stored secret value does not open with the key in {self.path} (another key, or a value moved between records)"
            ) from None


def record_aad(kind: str, region: str, name: str, version: str) -> str:
    """The associated data a record's value is sealed with: what it is, where, and which version."""
    return "\x1f".join((kind, region, name, version))


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # whatever the umask
        os.write(fd, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if another process created the key first: keep theirs
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
