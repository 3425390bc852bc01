"""AddListenerCertificates, RemoveListenerCertificates, DescribeListenerCertificates.

An HTTPS listener has one default certificate (``Certificates`` of CreateListener)
and any number of extra ones served by SNI: a client naming a host that an
extra certificate covers gets that certificate, any other client the default.
The extras are stored on the listener record as ``_sniCertificates``.
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2 import config
from portside.control.elbv2.certificates import require_certificates
from portside.control.elbv2.common import fail, paginate, require, with_marker
from portside.control.plane import ControlPlane

MAX_CERTIFICATES_PER_LISTENER = 25
SNI_KEY = "_sniCertificates"


def add_listener_certificates(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = _https_listener(plane, region, params)
    wanted = [c["CertificateArn"] for c in require_certificates(plane, region, params.get("Certificates"))]
    extras = list(body.get(SNI_KEY) or [])
    default = _default(body)
    for arn in wanted:
        if arn != default and arn not in extras:
            extras.append(arn)
    if len(extras) + 1 > MAX_CERTIFICATES_PER_LISTENER:
        raise fail("TooManyCertificates", f"A listener can have at most {MAX_CERTIFICATES_PER_LISTENER} certificates")
    _save(plane, body, extras)
    return {"Certificates": [{"CertificateArn": arn, "IsDefault": False} for arn in wanted if arn != default]}


def remove_listener_certificates(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = _https_listener(plane, region, params)
    given = [c.get("CertificateArn") for c in params.get("Certificates") or []]
    if _default(body) in given:
        raise fail("OperationNotPermitted", "The default certificate cannot be removed from a listener")
    _save(plane, body, [arn for arn in body.get(SNI_KEY) or [] if arn not in given])
    return {}


def describe_listener_certificates(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener", params.get("ListenerArn"))
    items = [{"CertificateArn": c["CertificateArn"], "IsDefault": True} for c in body.get("Certificates") or []]
    items += [{"CertificateArn": arn, "IsDefault": False} for arn in body.get(SNI_KEY) or []]
    page, marker = paginate(items, params)
    return with_marker({"Certificates": page}, marker)


def sni_certificate_arns(body: dict[str, Any]) -> list[str]:
    return list(body.get(SNI_KEY) or [])


def _https_listener(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener", params.get("ListenerArn"))
    if body.get("Protocol") != "HTTPS":
        raise fail("InvalidConfigurationRequest", "Certificates can be added to HTTPS listeners only")
    return body


def _default(body: dict[str, Any]) -> str | None:
    certs = body.get("Certificates") or []
    return certs[0]["CertificateArn"] if certs else None


def _save(plane: ControlPlane, body: dict[str, Any], extras: list[str]) -> None:
    body[SNI_KEY] = extras
    with plane.store.transaction():
        plane.store.update_listener_body(body)
    config.publish(plane)
