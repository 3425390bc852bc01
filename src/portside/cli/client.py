"""A botocore client for the portside endpoint, as the CLI uses it."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

DEFAULT_ENDPOINT = "http://127.0.0.1:7070"


def endpoint_from_env() -> str:
    return os.environ.get("PORTSIDE_ENDPOINT", DEFAULT_ENDPOINT)


def make_client(service: str, endpoint: str, region: str | None = None) -> Any:
    """A client signed with the caller's AWS credentials when set, else placeholder ones (any key works on loopback)."""
    session = botocore.session.get_session()
    credentials = session.get_credentials()
    access_key = credentials.access_key if credentials else "portside"
    secret_key = credentials.secret_key if credentials else "portside"
    return session.create_client(
        service,
        endpoint_url=endpoint,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


class PortsideCallError(Exception):
    """A ``Portside.*`` action failed: ``code`` and ``message`` as the server answered them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def portside_call(endpoint: str, action: str, params: dict[str, Any], region: str | None = None) -> dict[str, Any]:
    """Call one of portside's own JSON actions (``X-Amz-Target: Portside.<action>``).

    Signed with SigV4 like the AWS clients are (the caller's AWS credentials, else placeholder
    ones, which a loopback endpoint accepts unless it runs with ``--auth always``). An ``https``
    endpoint is verified against ``$AWS_CA_BUNDLE`` when set, as boto3 does. Raises PortsideCallError for an error answer and
    OSError when the endpoint cannot be reached.
    """
    session = botocore.session.get_session()
    found = session.get_credentials()
    credentials = (
        found.get_frozen_credentials() if found else Credentials("portside", "portside")
    )
    region = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    request = AWSRequest(
        method="POST",
        url=endpoint.rstrip("/") + "/",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Portside.{action}"},
    )
    SigV4Auth(credentials, "elasticloadbalancing", region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    # An HTTPS API with a private CA: trust the bundle boto3 and the AWS CLI are told about.
    bundle = os.environ.get("AWS_CA_BUNDLE")
    context = ssl.create_default_context(cafile=bundle) if bundle and prepared.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(http, timeout=60, context=context) as response:
            return dict(json.loads(response.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            error = json.loads(body)
            code, message = str(error.get("__type", exc.code)), str(error.get("message", ""))
        except ValueError:
            code, message = str(exc.code), body.decode("utf-8", "replace")
        raise PortsideCallError(code, message) from None
