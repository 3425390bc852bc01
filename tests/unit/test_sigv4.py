"""SigV4 verification against signatures made by the real botocore signer.

Requests are signed with ``botocore.auth.SigV4Auth`` / ``SigV4QueryAuth`` and then presented to
:func:`portside.api.sigv4.verify` the way they travel: the prepared URL split into path and
query, the headers plus the Host header an HTTP client adds, the body bytes. One test sends real
boto3 calls to a stdlib HTTP server on 127.0.0.1:0 and verifies what arrived on the socket.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from portside.api import sigv4
from portside.errors import AuthError

KEY = "AKIDPORTSIDE0001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = {KEY: SECRET, "AKIDOTHER": "other-secret"}

Wire = tuple[str, str, str, list[tuple[str, str]], bytes]

CODES = {
    "json": {
        "missing": "MissingAuthenticationTokenException",
        "incomplete": "IncompleteSignatureException",
        "unknown": "UnrecognizedClientException",
        "bad": "InvalidSignatureException",
    },
    "query": {
        "missing": "MissingAuthenticationToken",
        "incomplete": "IncompleteSignature",
        "unknown": "InvalidClientTokenId",
        "bad": "SignatureDoesNotMatch",
    },
}


def now() -> datetime:
    return datetime.now(UTC)


def to_wire(req: AWSRequest) -> Wire:
    """What an HTTP client puts on the socket for a signed AWSRequest."""
    prepared = req.prepare()
    url = urlsplit(prepared.url)
    headers = list(prepared.headers.items())
    headers.append(("Host", url.netloc))  # urllib3 adds it; botocore signed the same value
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return prepared.method, url.path, url.query, headers, body


def signed(
    protocol: str,
    *,
    key: str = KEY,
    secret: str = SECRET,
    url: str | None = None,
    params: dict[str, str] | None = None,
    extra_headers: dict[str, str] | None = None,
    region: str = "us-west-2",
) -> Wire:
    """A request as boto3 would send it for ``protocol``, signed by botocore."""
    if protocol == "json":
        req = AWSRequest(
            method="POST",
            url=url or "http://127.0.0.1:8080/",
            data=json.dumps({"family": "web", "containerDefinitions": []}).encode(),
            headers={
                "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
                "Content-Type": "application/x-amz-json-1.1",
                **(extra_headers or {}),
            },
            params=params or {},
        )
        service = "ecs"
    else:
        req = AWSRequest(
            method="POST",
            url=url or "http://127.0.0.1:8080/",
            data=b"Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=web%20tier",
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                **(extra_headers or {}),
            },
            params=params or {},
        )
        service = "elasticloadbalancing"
    SigV4Auth(Credentials(key, secret), service, region).add_auth(req)
    return to_wire(req)


def replace_header(headers: list[tuple[str, str]], name: str, value: str | None) -> list[tuple[str, str]]:
    out = [(n, v) for n, v in headers if n.lower() != name.lower()]
    if value is not None:
        out.append((name, value))
    return out


def header(headers: list[tuple[str, str]], name: str) -> str:
    return next(v for n, v in headers if n.lower() == name.lower())


def check(wire: Wire, protocol: str, when: datetime | None = None, **kw: Any) -> tuple[str, str]:
    method, path, query, headers, body = wire
    return sigv4.verify(method, path, query, headers, body, CREDS, when or now(), protocol, **kw)


def rejected(wire: Wire, protocol: str, when: datetime | None = None, **kw: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        check(wire, protocol, when, **kw)
    return info.value


# ----------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_botocore_signed_request_verifies(protocol: str) -> None:
    assert check(signed(protocol), protocol) == (KEY, "us-west-2")


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_path_and_query_needing_encoding_verify(protocol: str) -> None:
    # The path as botocore sends it (encoded once), with dot segments and a double slash that
    # the canonical form removes; query values with spaces, reserved and non-ASCII characters.
    wire = signed(
        protocol,
        url="http://127.0.0.1:8080/a%20b/./c//%E2%9C%93/x/../~y%2Bz/",
        params={"filter": "a b/c", "ü": "&=+?", "empty": "", "tilde~": "*'()"},
    )
    assert "+" in wire[2] and "%C3%BC" in wire[2]
    assert check(wire, protocol) == (KEY, "us-west-2")


def test_region_and_key_come_from_the_scope() -> None:
    wire = signed("json", key="AKIDOTHER", secret="other-secret", region="eu-central-1")
    assert check(wire, "json") == ("AKIDOTHER", "eu-central-1")


def test_headers_may_be_a_dict_with_any_case() -> None:
    method, path, query, headers, body = signed("json")
    as_dict = {name.upper(): value for name, value in headers}
    assert sigv4.verify(method, path, query, as_dict, body, CREDS, now(), "json") == (KEY, "us-west-2")


def test_repeated_headers_are_joined_like_botocore() -> None:
    req = AWSRequest(method="POST", url="http://localhost:9000/", data=b"{}")
    req.headers.add_header("X-Amz-Meta", "  one   two ")
    req.headers.add_header("X-Amz-Meta", "three")
    SigV4Auth(Credentials(KEY, SECRET), "ecs", "us-west-2").add_auth(req)
    # AWSRequest.prepare() keeps only the last of repeated headers, so take them unprepared.
    headers = [*req.headers.items(), ("Host", "localhost:9000")]
    assert [v for n, v in headers if n == "X-Amz-Meta"] == ["  one   two ", "three"]
    assert check(("POST", "/", "", headers, b"{}"), "json") == (KEY, "us-west-2")


def test_signed_content_sha256_header_is_used() -> None:
    body = b'{"cluster":"default"}'
    req = AWSRequest(
        method="POST",
        url="http://localhost/",
        data=body,
        headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()},
    )
    SigV4Auth(Credentials(KEY, SECRET), "ecs", "us-west-2").add_auth(req)
    assert check(to_wire(req), "json") == (KEY, "us-west-2")


def test_date_header_instead_of_x_amz_date() -> None:
    req = AWSRequest(method="POST", url="http://localhost/", data=b"{}", headers={"Date": "placeholder"})
    SigV4Auth(Credentials(KEY, SECRET), "ecs", "us-west-2").add_auth(req)
    wire = to_wire(req)
    assert not any(n.lower() == "x-amz-date" for n, _ in wire[3])
    assert check(wire, "json") == (KEY, "us-west-2")


def test_presigned_query_string_verifies() -> None:
    req = AWSRequest(
        method="GET",
        url="http://127.0.0.1:8080/",
        params={"Action": "DescribeTargetGroups", "Version": "2015-12-01", "Names.member.1": "web tier"},
    )
    SigV4QueryAuth(Credentials(KEY, SECRET), "elasticloadbalancing", "us-west-2", expires=60).add_auth(req)
    wire = to_wire(req)
    assert "X-Amz-Signature=" in wire[2]
    assert check(wire, "query") == (KEY, "us-west-2")

    late = rejected(wire, "query", now() + timedelta(seconds=120))
    assert late.code == "SignatureDoesNotMatch"
    assert late.message.startswith("Signature expired: ")

    method, path, query, headers, body = wire
    tampered = query.replace("web%20tier", "other")
    assert rejected((method, path, tampered, headers, body), "query").code == "SignatureDoesNotMatch"
    too_long = query.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    err = rejected((method, path, too_long, headers, body), "query")
    assert err.code == "IncompleteSignature"
    assert err.message == "X-Amz-Expires must be less than a week (in seconds) that is 604800"


def test_expected_service_must_match_the_scope() -> None:
    wire = signed("json")
    assert check(wire, "json", expected_service="ecs") == (KEY, "us-west-2")
    err = rejected(wire, "json", expected_service="elasticloadbalancing")
    assert err.code == "InvalidSignatureException"
    assert err.message == "Credential should be scoped to correct service: 'elasticloadbalancing'."


# ----------------------------------------------------------------------------- rejected


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_unknown_access_key(protocol: str) -> None:
    err = rejected(signed(protocol, key="AKIDNOBODY"), protocol)
    assert err.code == CODES[protocol]["unknown"]
    assert err.message == "The security token included in the request is invalid."


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_wrong_secret(protocol: str) -> None:
    err = rejected(signed(protocol, secret="not-the-secret"), protocol)
    assert err.code == CODES[protocol]["bad"]
    assert err.message.startswith(
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details."
    )


def test_json_mismatch_message_carries_the_canonical_request() -> None:
    err = rejected(signed("json", secret="not-the-secret"), "json")
    assert "\n\nThe Canonical String for this request should have been\n'POST\n/\n" in err.message
    assert "host:127.0.0.1:8080\n" in err.message
    assert "\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n" in err.message
    assert SECRET not in err.message


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_tampered_body(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    err = rejected((method, path, query, headers, body.replace(b"web", b"bad")), protocol)
    assert err.code == CODES[protocol]["bad"]


@pytest.mark.parametrize(
    ("protocol", "name", "value"),
    [
        ("json", "X-Amz-Target", "AmazonEC2ContainerServiceV20141113.DeleteCluster"),
        ("json", "Host", "127.0.0.1:9999"),
        ("query", "Content-Type", "application/x-www-form-urlencoded"),
    ],
)
def test_tampered_signed_header(protocol: str, name: str, value: str) -> None:
    method, path, query, headers, body = signed(protocol)
    err = rejected((method, path, query, replace_header(headers, name, value), body), protocol)
    assert err.code == CODES[protocol]["bad"]


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_tampered_path_and_query(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol, url="http://127.0.0.1:8080/v1/", params={"a": "1"})
    assert rejected((method, "/v2/", query, headers, body), protocol).code == CODES[protocol]["bad"]
    assert rejected((method, path, "a=2", headers, body), protocol).code == CODES[protocol]["bad"]
    assert rejected(("PUT", path, query, headers, body), protocol).code == CODES[protocol]["bad"]


def test_unsigned_content_sha256_header_cannot_smuggle_a_body() -> None:
    # Signed without X-Amz-Content-SHA256; an attacker swaps the body and adds the header
    # carrying the *original* body hash. The header is not signed, so it must be ignored.
    method, path, query, headers, body = signed("json")
    forged = replace_header(headers, "X-Amz-Content-SHA256", hashlib.sha256(body).hexdigest())
    err = rejected((method, path, query, forged, b'{"family":"evil"}'), "json")
    assert err.code == "InvalidSignatureException"


def test_signed_content_sha256_must_match_the_body() -> None:
    body = b"{}"
    req = AWSRequest(
        method="POST",
        url="http://localhost/",
        data=body,
        headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
    )
    SigV4Auth(Credentials(KEY, SECRET), "ecs", "us-west-2").add_auth(req)
    err = rejected(to_wire(req), "json")
    assert err.code == "InvalidSignatureException"
    assert err.message == "The provided 'x-amz-content-sha256' header does not match what was computed."


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_missing_authorization(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    err = rejected((method, path, query, replace_header(headers, "Authorization", None), body), protocol)
    assert err.code == CODES[protocol]["missing"]
    assert err.message == "Request is missing Authentication Token"


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_missing_date(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    auth = header(headers, "Authorization")
    err = rejected((method, path, query, replace_header(headers, "X-Amz-Date", None), body), protocol)
    assert err.code == CODES[protocol]["incomplete"]
    assert err.message == (
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization={auth}"
    )


@pytest.mark.parametrize("protocol", ["json", "query"])
@pytest.mark.parametrize("skew", [timedelta(minutes=6), timedelta(hours=-2)])
def test_stale_or_future_date(protocol: str, skew: timedelta) -> None:
    wire = signed(protocol)
    stamp = header(wire[3], "X-Amz-Date")
    signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    server_now = signed_at + skew
    err = rejected(wire, protocol, server_now)
    assert err.code == CODES[protocol]["bad"]
    fmt = "%Y%m%dT%H%M%SZ"
    if skew > timedelta(0):
        assert err.message == (
            f"Signature expired: {stamp} is now earlier than "
            f"{(server_now - timedelta(minutes=5)).strftime(fmt)} ({server_now.strftime(fmt)} - 5 min.)"
        )
    else:
        assert err.message == (
            f"Signature not yet current: {stamp} is still later than "
            f"{(server_now + timedelta(minutes=5)).strftime(fmt)} ({server_now.strftime(fmt)} + 5 min.)"
        )


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_date_within_five_minutes_is_fine(protocol: str) -> None:
    wire = signed(protocol)
    signed_at = datetime.strptime(header(wire[3], "X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert check(wire, protocol, signed_at + timedelta(minutes=4, seconds=59)) == (KEY, "us-west-2")
    assert check(wire, protocol, signed_at - timedelta(minutes=4, seconds=59)) == (KEY, "us-west-2")


@pytest.mark.parametrize("protocol", ["json", "query"])
@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=AKIDPORTSIDE0001/20260101/us-west-2/ecs/aws4_request",
            (
                "Authorization header requires 'Signature' parameter. "
                "Authorization header requires 'SignedHeaders' parameter. "
                "Authorization=AWS4-HMAC-SHA256 Credential=AKIDPORTSIDE0001/20260101/us-west-2/ecs/aws4_request"
            ),
        ),
        (
            "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=abc",
            (
                "'Credential' not a valid key=value pair (missing equal-sign) in Authorization header: "
                "'AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=abc'."
            ),
        ),
        (
            "AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=abc",
            (
                "Credential must have exactly 5 slash-delimited elements, "
                "e.g. keyid/date/region/service/term, got 'a/b/c/d'"
            ),
        ),
        (
            "AWS4-HMAC-SHA512 Credential=a/b/c/d/e, SignedHeaders=host, Signature=abc",
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
        ),
    ],
)
def test_malformed_authorization(protocol: str, authorization: str, message: str) -> None:
    method, path, query, headers, body = signed(protocol)
    err = rejected(
        (method, path, query, replace_header(headers, "Authorization", authorization), body), protocol
    )
    assert err.code == CODES[protocol]["incomplete"]
    assert err.message == message


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_non_sigv4_authorization_counts_as_missing(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    err = rejected(
        (method, path, query, replace_header(headers, "Authorization", "Bearer abc"), body), protocol
    )
    assert err.code == CODES[protocol]["missing"]


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_bad_scope(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    auth = header(headers, "Authorization")
    stamp = header(headers, "X-Amz-Date")
    forged = auth.replace(f"/{stamp[:8]}/", "/20200101/").replace("aws4_request", "aws5_request")
    err = rejected((method, path, query, replace_header(headers, "Authorization", forged), body), protocol)
    assert err.code == CODES[protocol]["bad"]
    assert err.message == (
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. "
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'20200101' != '{stamp[:8]}', from '{stamp}'."
    )


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_host_must_be_signed(protocol: str) -> None:
    method, path, query, headers, body = signed(protocol)
    auth = header(headers, "Authorization").replace("host;", "")
    err = rejected((method, path, query, replace_header(headers, "Authorization", auth), body), protocol)
    assert err.code == CODES[protocol]["bad"]
    assert err.message == "'Host' must be a 'SignedHeader' in the AWS Authorization."


@pytest.mark.parametrize(("protocol", "status"), [("json", 400), ("query", 403)])
def test_status_hints_follow_aws(protocol: str, status: int) -> None:
    assert rejected(signed(protocol, key="AKIDNOBODY"), protocol).status_hint == status
    assert rejected(signed(protocol, secret="x"), protocol).status_hint == status


def test_unknown_protocol_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="protocol"):
        check(signed("json"), "rest-json")


# ----------------------------------------------------------------------------- load_credentials


def test_load_shared_credentials_ini(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "# portside keys\n"
        "[default]\n"
        "aws_access_key_id = AKIDONE\n"
        "aws_secret_access_key = s3cr3t/with+slash\n"
        "region = us-west-2\n"
        "\n"
        "[ci]\n"
        "aws_access_key_id=AKIDTWO\n"
        "aws_secret_access_key=other%secret\n"
        "[only-settings]\n"
        "region = eu-west-1\n"
    )
    assert sigv4.load_credentials(str(path)) == {"AKIDONE": "s3cr3t/with+slash", "AKIDTWO": "other%secret"}


def test_load_key_secret_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# one per line\nAKIDONE:s3cr3t/x+y\n\nAKIDTWO,second\n")
    assert sigv4.load_credentials(str(path)) == {"AKIDONE": "s3cr3t/x+y", "AKIDTWO": "second"}


def test_load_console_csv(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("\ufeffAccess key ID,Secret access key\nAKIDONE,s3cr3t\n")
    assert sigv4.load_credentials(str(path)) == {"AKIDONE": "s3cr3t"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[default]\naws_access_key_id = AKIDONE\n", "section [default]: aws_secret_access_key is missing"),
        ("[a]\naws_access_key_id=A\naws_secret_access_key=x\n[a]\n", "line 4: section [a] appears twice"),
        ("[a]\naws_access_key_id=A\nnot an option line\n", "line 3: expected 'name = value'"),
        ("AKIDONE:secret\njust-one-field\n", "line 2: expected KEY:SECRET"),
        ("AKIDONE:one\nAKIDONE:two\n", "line 2: access key id 'AKIDONE' appears twice"),
        ("\n# nothing\n", "no credentials found"),
        ("Access key ID,Secret access key\nAKIDONE\n", "line 2: expected 2 columns"),
    ],
)
def test_load_malformed_credentials(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        sigv4.load_credentials(str(path))
    assert str(path) in str(info.value)
    assert where in str(info.value)


# ----------------------------------------------------------------------------- over the wire


class _Capture(http.server.BaseHTTPRequestHandler):
    """Verifies each request as it arrived and answers like the AWS service would."""

    captured: ClassVar[list[tuple[str, str, list[tuple[str, str]], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = list(self.headers.items())
        self.captured.append((self.command, self.path, headers, body))
        path, _, query = self.path.partition("?")
        protocol = "json" if self.headers.get("X-Amz-Target") else "query"
        try:
            sigv4.verify(self.command, path, query, headers, body, CREDS, now(), protocol)
        except AuthError as err:
            if protocol == "json":
                self._answer(
                    err.status_hint,
                    "application/x-amz-json-1.1",
                    json.dumps({"__type": err.code, "message": err.message}).encode(),
                )
            else:
                xml = (
                    "<ErrorResponse><Error><Type>Sender</Type>"
                    f"<Code>{err.code}</Code><Message>{err.message}</Message></Error>"
                    "<RequestId>r-1</RequestId></ErrorResponse>"
                )
                self._answer(err.status_hint, "text/xml", xml.encode())
            return
        if protocol == "json":
            self._answer(200, "application/x-amz-json-1.1", b'{"clusterArns": ["arn:aws:ecs:x:1:cluster/a"]}')
        else:
            xml = (
                '<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
                "<DescribeTargetGroupsResult><TargetGroups/></DescribeTargetGroupsResult>"
                "<ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>"
            )
            self._answer(200, "text/xml", xml.encode())

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str, list[tuple[str, str]], bytes]]]]:
    captured: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
    handler = type("Handler", (_Capture,), {"captured": captured})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", captured
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def client(service: str, endpoint: str, key: str = KEY, secret: str = SECRET):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def test_real_boto3_requests_verify_as_received(server: tuple[str, list]) -> None:  # type: ignore[type-arg]
    base, captured = server
    port = urlsplit(base).port
    # A base path that needs encoding, to prove the double-encoded canonical path matches.
    ecs = client("ecs", f"{base}/port%20side/v1~x/")
    assert ecs.list_clusters()["clusterArns"] == ["arn:aws:ecs:x:1:cluster/a"]
    elbv2 = client("elbv2", base)
    assert elbv2.describe_target_groups(Names=["web tier", "api/ü"])["TargetGroups"] == []

    assert len(captured) == 2
    for (method, raw_path, headers, body), service, protocol in zip(
        captured, ["ecs", "elasticloadbalancing"], ["json", "query"]
    ):
        assert {n.lower(): v for n, v in headers}["host"] == f"127.0.0.1:{port}"
        path, _, query = raw_path.partition("?")
        result = sigv4.verify(
            method, path, query, headers, body, CREDS, now(), protocol, expected_service=service
        )
        assert result == (KEY, "eu-west-1")
    assert captured[0][1] == "/port%20side/v1~x/"


def test_real_boto3_sees_aws_errors(server: tuple[str, list]) -> None:  # type: ignore[type-arg]
    base, _ = server
    with pytest.raises(ClientError) as info:
        client("ecs", base, key="AKIDNOBODY").list_clusters()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == "The security token included in the request is invalid."

    with pytest.raises(ClientError) as info:
        client("elbv2", base, secret="wrong").describe_target_groups()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# ----------------------------------------------------------------------------- any key (loopback) and X-Amz-Target


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_unknown_key_is_accepted_only_when_asked(protocol: str) -> None:
    wire = signed(protocol, key="AKIDANYONE", secret="whatever")
    assert rejected(wire, protocol).code == CODES[protocol]["unknown"]
    assert check(wire, protocol, accept_unknown_keys=True) == ("AKIDANYONE", "us-west-2")


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_any_key_still_needs_a_well_formed_signature(protocol: str) -> None:
    """Accepting any key checks everything but the signature value: the form, the clock, the scope."""
    method, path, query, headers, body = signed(protocol, key="AKIDANYONE", secret="whatever")
    mangled = header(headers, "Authorization").replace("Signature=", "Signature=zz")
    wire = (method, path, query, replace_header(headers, "Authorization", mangled), body)
    err = rejected(wire, protocol, accept_unknown_keys=True)
    assert err.code == CODES[protocol]["bad"]
    stale = rejected(signed(protocol, key="AKIDANYONE"), protocol, now() + timedelta(minutes=20), accept_unknown_keys=True)
    assert stale.code == CODES[protocol]["bad"] and "Signature expired" in stale.message
    unsigned = (method, path, query, replace_header(headers, "Authorization", None), body)
    assert rejected(unsigned, protocol, accept_unknown_keys=True).code == CODES[protocol]["missing"]


def test_any_key_still_checks_the_service_scope() -> None:
    wire = signed("json", key="AKIDANYONE")  # signed for ecs
    err = rejected(wire, "json", accept_unknown_keys=True, expected_service="elasticloadbalancing")
    assert err.code == "InvalidSignatureException"
    assert "scoped to correct service: 'elasticloadbalancing'" in err.message


def test_x_amz_target_must_be_signed() -> None:
    """A signature that does not cover X-Amz-Target could be replayed against any other operation."""
    req = AWSRequest(method="POST", url="http://127.0.0.1:8080/", data=b"{}",
                     headers={"Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(KEY, SECRET), "ecs", "us-west-2").add_auth(req)
    method, path, query, headers, body = to_wire(req)
    assert "x-amz-target" not in header(headers, "Authorization")
    assert check((method, path, query, headers, body), "json") == (KEY, "us-west-2")  # no target: nothing to sign
    with_target = [*headers, ("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.DeleteCluster")]
    for accept in (False, True):
        err = rejected((method, path, query, with_target, body), "json", accept_unknown_keys=accept)
        assert err.code == "InvalidSignatureException"
        assert err.message == "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
