"""DescribeListenerAttributes and ModifyListenerAttributes (an Application Load Balancer's listener).

DescribeListenerAttributes lists every attribute AWS gives a listener of its protocol, with its
value (AWS's default until changed): the response-header ones for every listener, and for HTTPS
listeners also the names of the mTLS/TLS request headers and Strict-Transport-Security.

portside applies ``routing.http.response.server.enabled`` (default ``true``): ``false`` leaves the
``Server`` header out of every answer the proxy makes itself (error pages, fixed responses,
redirects); targets' own headers pass as they are. Every other attribute accepts only its
default value (a no-op, so tools that write the defaults keep working); any other value is
refused with ``InvalidConfigurationRequest`` naming the attribute, because the proxy adds no such
header and renames none. Keys that are not listener attributes of an Application Load Balancer
(``tcp.idle_timeout.seconds`` is a Network Load Balancer's), and HTTPS-only keys on an HTTP
listener, are refused by name. A refused request changes nothing.
"""

from __future__ import annotations

from typing import Any

from portside.control.elbv2 import config
from portside.control.elbv2.common import fail, require, validation
from portside.control.plane import ControlPlane

SERVER_ENABLED = config.SERVER_HEADER_KEY
STORED = "_attributes"

_RESPONSE_HEADERS = (
    "access_control_allow_origin", "access_control_allow_methods", "access_control_allow_headers",
    "access_control_allow_credentials", "access_control_expose_headers", "access_control_max_age",
    "content_security_policy", "x_content_type_options", "x_frame_options",
)
# Every listener: key -> AWS's default.
COMMON: dict[str, str] = {
    SERVER_ENABLED: "true",
    **{f"routing.http.response.{name}.header_value": "" for name in _RESPONSE_HEADERS},
}
_REQUEST_HEADERS = {
    "x_amzn_mtls_clientcert_serial_number": "X-Amzn-Mtls-Clientcert-Serial-Number",
    "x_amzn_mtls_clientcert_issuer": "X-Amzn-Mtls-Clientcert-Issuer",
    "x_amzn_mtls_clientcert_subject": "X-Amzn-Mtls-Clientcert-Subject",
    "x_amzn_mtls_clientcert_validity": "X-Amzn-Mtls-Clientcert-Validity",
    "x_amzn_mtls_clientcert_leaf": "X-Amzn-Mtls-Clientcert-Leaf",
    "x_amzn_mtls_clientcert": "X-Amzn-Mtls-Clientcert",
    "x_amzn_tls_version": "X-Amzn-Tls-Version",
    "x_amzn_tls_cipher_suite": "X-Amzn-Tls-Cipher-Suite",
}
# HTTPS listeners only: key -> AWS's default.
HTTPS_ONLY: dict[str, str] = {
    **{f"routing.http.request.{key}.header_name": name for key, name in _REQUEST_HEADERS.items()},
    "routing.http.response.strict_transport_security.header_value": "",
}


def defaults(listener: dict[str, Any]) -> dict[str, str]:
    """Every attribute of ``listener`` (by its protocol) with AWS's default, sorted by key."""
    out = dict(COMMON)
    if listener.get("Protocol") == "HTTPS":
        out.update(HTTPS_ONLY)
    return dict(sorted(out.items()))


def current(listener: dict[str, Any]) -> dict[str, str]:
    stored = listener.get(STORED) or {}
    return {key: stored.get(key, default) for key, default in defaults(listener).items()}


def server_header(listener: dict[str, Any]) -> bool:
    """Whether the proxy's own answers on ``listener`` carry a Server header."""
    return current(listener)[SERVER_ENABLED] == "true"


# -- API operations


def describe_listener_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener", params.get("ListenerArn"))
    return {"Attributes": _render(current(body))}


def modify_listener_attributes(plane: ControlPlane, region: str, params: dict[str, Any]) -> dict[str, Any]:
    body = require(plane, region, "listener", params.get("ListenerArn"))
    items = params.get("Attributes") or []
    if not items:
        raise validation("At least one attribute must be specified")
    known = defaults(body)
    changes: dict[str, str] = {}
    for item in items:
        key, value = item.get("Key"), item.get("Value")
        if not key:
            raise validation("An attribute key must be specified")
        changes[key] = _check(body, known, key, "" if value is None else str(value))
    stored = dict(body.get(STORED) or {})
    if SERVER_ENABLED in changes:
        stored[SERVER_ENABLED] = changes[SERVER_ENABLED]
    body[STORED] = stored
    with plane.store.transaction():
        plane.store.update_listener_body(body)
    config.publish(plane)
    return {"Attributes": _render(current(body))}


def _render(attributes: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in attributes.items()]


def _check(body: dict[str, Any], known: dict[str, str], key: str, value: str) -> str:
    if key not in known:
        if key in HTTPS_ONLY:
            raise fail(
                "InvalidConfigurationRequest",
                f"Listener attribute '{key}' is supported by HTTPS listeners only, not {body.get('Protocol')}",
            )
        raise fail(
            "InvalidConfigurationRequest",
            f"Listener attribute key '{key}' is not recognized for a listener of an Application Load Balancer",
        )
    if key == SERVER_ENABLED:
        if value.lower() not in ("true", "false"):
            raise fail("InvalidConfigurationRequest", f"Listener attribute '{key}' must be 'true' or 'false', not '{value}'")
        return value.lower()
    if value != known[key]:
        raise fail(
            "InvalidConfigurationRequest",
            f"Listener attribute '{key}' can only be '{known[key]}' (its default) on portside: "
            "portside's proxy does not implement it",
        )
    return value
