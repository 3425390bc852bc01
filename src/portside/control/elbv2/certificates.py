"""Server certificates for HTTPS listeners, imported ACM-style.

``import_certificate`` (CLI: ``portside cert import NAME CERT KEY``) checks that the PEM
certificate (chain) and private key load together with ``ssl.SSLContext.load_cert_chain``,
copies them into ``<state-dir>/certificates/<uuid>/`` (directory 0700, files 0600) and returns
an ACM-style ARN, ``arn:aws:acm:<region>:<account>:certificate/<uuid>``, to put in a listener's
``Certificates``. Importing again under the same name in the same region keeps the ARN and
replaces the files (as ACM re-import does); listeners using it pick the new pair up at once.

On the wire this is a portside action, not an AWS one: a JSON 1.1 POST with
``X-Amz-Target: Portside.ImportCertificate`` and the body
``{"Name": ..., "Certificate": "<PEM>", "PrivateKey": "<PEM>"}`` (optionally
``"CertificateChain": "<PEM>"``, appended to the certificate), answered with
``{"CertificateArn": ..., "Name": ...}``; signed like any request when the API is not on
loopback.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import uuid
from pathlib import Path
from typing import Any

from portside.control.elbv2 import config
from portside.control.elbv2.common import fail, validation
from portside.control.plane import ControlPlane

TARGET = "Portside.ImportCertificate"
MAX_PEM_BYTES = 1024 * 1024


def certificate_arn(region: str, account: str, cert_id: str) -> str:
    return f"arn:aws:acm:{region}:{account}:certificate/{cert_id}"


def get_certificate(plane: ControlPlane, region: str, arn: str) -> dict[str, Any] | None:
    return plane.store.certificate(region, arn)


def require_certificates(plane: ControlPlane, region: str, certificates: Any) -> list[dict[str, str]]:
    """``[{"CertificateArn": ...}]`` with every ARN imported in ``region``; CertificateNotFound otherwise."""
    out = []
    for item in certificates or []:
        arn = item.get("CertificateArn")
        if not arn:
            raise validation("A certificate ARN must be specified")
        if get_certificate(plane, region, arn) is None:
            raise fail("CertificateNotFound", f"Certificate '{arn}' not found")
        out.append({"CertificateArn": arn})
    return out


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 128:
        raise validation("A certificate name of 1 to 128 characters must be given")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise validation(f"Certificate name '{name}' can contain only letters, digits, '-', '_' and '.'")
    return name


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_pair(cert_path: Path, key_path: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise validation(
            f"The certificate and private key do not load as a pair: {getattr(exc, 'reason', None) or exc}"
        ) from None


def import_certificate_pem(plane: ControlPlane, region: str, name: Any, cert_pem: bytes, key_pem: bytes) -> str:
    """Check and store a PEM certificate (chain) and key under ``name``; returns the ARN."""
    name = _check_name(name)
    if not cert_pem.strip() or not key_pem.strip():
        raise validation("Both a certificate and a private key must be given (PEM)")
    if len(cert_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise validation("A certificate or key larger than 1 MiB is not accepted")
    root = Path(plane.config.state_dir) / "certificates"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    existing = plane.store.certificate_named(region, name)
    body: dict[str, Any] = (
        dict(existing)
        if existing
        else {"CertificateArn": certificate_arn(region, plane.account, str(uuid.uuid4())), "Name": name, "_version": 0}
    )
    cert_id = body["CertificateArn"].rsplit("/", 1)[1]
    directory = root / cert_id
    directory.mkdir(exist_ok=True)
    os.chmod(directory, 0o700)
    version = int(body.get("_version", 0)) + 1
    cert_path = directory / f"cert-{version}.pem"
    key_path = directory / f"key-{version}.pem"
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        scratch_cert, scratch_key = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
        _write_private(scratch_cert, cert_pem)
        _write_private(scratch_key, key_pem)
        _check_pair(scratch_cert, scratch_key)
        os.replace(scratch_cert, cert_path)
        os.replace(scratch_key, key_path)
    previous = (body.get("_cert_path"), body.get("_key_path"))
    body.update({"_version": version, "_cert_path": str(cert_path), "_key_path": str(key_path), "ImportedAt": plane.clock()})
    try:
        with plane.store.transaction():
            plane.store.put_certificate(region, name, body)
    except BaseException:
        for path in (cert_path, key_path):
            path.unlink(missing_ok=True)
        raise
    config.publish(plane)
    for old in previous:
        if old and old not in (str(cert_path), str(key_path)):
            Path(old).unlink(missing_ok=True)
    return str(body["CertificateArn"])


def import_certificate(
    plane: ControlPlane, name: str, cert_pem_path: str | os.PathLike[str], key_pem_path: str | os.PathLike[str],
    region: str | None = None,
) -> str:
    """Import the PEM files at ``cert_pem_path`` / ``key_pem_path`` (region: the server's); returns the ARN."""
    try:
        cert_pem = Path(cert_pem_path).read_bytes()
        key_pem = Path(key_pem_path).read_bytes()
    except OSError as exc:
        raise validation(f"Cannot read {exc.filename}: {exc.strerror}") from None
    return import_certificate_pem(plane, region or plane.config.region, name, cert_pem, key_pem)


def api_import_certificate(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """``Portside.ImportCertificate``: the JSON body described in the module docstring."""
    certificate = params.get("Certificate")
    key = params.get("PrivateKey")
    chain = params.get("CertificateChain") or ""
    if not all(isinstance(v, str) for v in (certificate, key, chain)):
        raise validation("Certificate, PrivateKey and CertificateChain must be PEM strings")
    assert isinstance(certificate, str) and isinstance(key, str)
    cert_pem = certificate.rstrip("\n") + "\n" + (chain.rstrip("\n") + "\n" if chain else "")
    arn = import_certificate_pem(plane, region, params.get("Name"), cert_pem.encode(), key.encode())
    return {"CertificateArn": arn, "Name": params.get("Name")}
