"""Raw HTTP requests to the portside API, signed with SigV4 as botocore signs them.

The API refuses unsigned requests (loopback included), so tests that need the raw wire
(malformed bodies, odd headers, a forged Host) sign with botocore's ``SigV4Auth`` here and
send with ``http.client``, which puts on the socket exactly the headers that were signed.
"""

from __future__ import annotations

import http.client
import ssl
from typing import NamedTuple
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
AUTOSCALING_TARGET = "AnyScaleFrontendService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
# Which SigV4 service scope each kind of request is signed for, as botocore does.
SIGNING_SERVICE = {ECS_TARGET: "ecs", AUTOSCALING_TARGET: "application-autoscaling", "Portside.": "elasticloadbalancing"}

TEST_KEY, TEST_SECRET = "AKIDTEST", "secret"


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: str


def signing_service(headers: dict[str, str]) -> str:
    """The service botocore would sign a request with these headers for (ELBv2 without a target)."""
    target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
    return next((s for prefix, s in SIGNING_SERVICE.items() if target.startswith(prefix)), "elasticloadbalancing")


def sign(
    endpoint: str,
    body: bytes,
    headers: dict[str, str],
    *,
    service: str | None = None,
    region: str = "us-east-1",
    key: str = TEST_KEY,
    secret: str = TEST_SECRET,
    path: str = "/",
) -> dict[str, str]:
    """The headers of a POST to ``endpoint`` signed by botocore (a ``Host`` in ``headers`` is signed as given)."""
    request = AWSRequest(method="POST", url=endpoint.rstrip("/") + path, data=body, headers=dict(headers))
    SigV4Auth(Credentials(key, secret), service or signing_service(headers), region).add_auth(request)
    signed = dict(request.headers.items())
    signed.setdefault("Host", urlsplit(endpoint).netloc)
    return signed


def send(
    endpoint: str, body: bytes, headers: dict[str, str], *, path: str = "/", context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> Reply:
    """POST exactly these headers (Host included) and body; the reply, error statuses included."""
    url = urlsplit(endpoint)
    if url.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            url.hostname or "", url.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    try:
        names = {name.lower() for name in headers}
        connection.putrequest("POST", path, skip_host="host" in names, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if "content-length" not in names:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace"))
    finally:
        connection.close()


def signed_post(endpoint: str, body: bytes, headers: dict[str, str], **options: str) -> Reply:
    """Sign (``sign``'s options) and send one POST."""
    return send(endpoint, body, sign(endpoint, body, headers, **options))
