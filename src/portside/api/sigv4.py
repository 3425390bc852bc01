"""Server-side verification of AWS Signature Version 4.

boto3 and the AWS CLI sign every request with SigV4 (botocore ``SigV4Auth``). This module
recomputes that signature from the request as it arrived on the wire and compares it, so that
portside can authenticate clients with ordinary AWS access keys it hands out itself.

Theory of operation
-------------------
The client builds a *canonical request* from the method, the URI path, the sorted query
string, the headers it lists in ``SignedHeaders`` and the SHA-256 of the body, hashes it into
a *string to sign* together with the timestamp and the credential scope
(``date/region/service/aws4_request``), and signs that with a key derived from the secret
by four chained HMACs. We rebuild the same three strings from the request we received and
compare the signatures in constant time (``hmac.compare_digest``).

What must match botocore exactly (``botocore/auth.py::SigV4Auth.canonical_request``):

- path: the path *as sent* (already percent-encoded once by the client), with dot segments and
  repeated slashes removed, then percent-encoded again with ``/`` and ``~`` safe. Non-S3
  services really do double-encode.
- query: every ``key=value`` pair decoded (``+`` is a space: botocore puts ``params`` on the
  wire with ``urlencode``) and re-encoded with only ``-_.~`` safe, sorted by encoded key then
  value.
- headers: the names from ``SignedHeaders``, lower-cased and sorted; values trimmed, inner
  runs of spaces collapsed, repeated headers joined with ``,``. ``host`` includes the port when
  the client used a non-default one; we take it from the Host header we received.
- payload: the ``X-Amz-Content-SHA256`` header when the client signed it, else the SHA-256 of
  the body. We additionally insist that a signed ``X-Amz-Content-SHA256`` equals the real
  hash of the body, otherwise the body would be unauthenticated.

Both the ``Authorization`` header form and the pre-signed query-string form
(``X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...&X-Amz-Signature=...``, botocore
``SigV4QueryAuth``) are accepted. ``Host`` must be a signed header, and so must ``X-Amz-Target``
when the request carries one (it names the operation).

With ``accept_unknown_keys`` (portside's default for loopback peers), an access key that is not
in the credentials passes without its signature value being compared (we have no secret to
compare with); everything else is still checked: the form, the clock, the scope and its
service, the signed headers and a signed body hash. What keeps web pages out on loopback is the
API's Host and Origin checks (``core/api_boundary.py``), not this mode.

Errors
------
Failures raise :class:`portside.errors.AuthError` with AWS's code for the protocol the request
came in on and AWS's own message text:

=====================  ======================================  ===========================
failure                JSON 1.1 (ECS, App Auto Scaling)        query (ELBv2)
=====================  ======================================  ===========================
no signature at all    ``MissingAuthenticationTokenException``  ``MissingAuthenticationToken``
malformed signature    ``IncompleteSignatureException``         ``IncompleteSignature``
unknown access key     ``UnrecognizedClientException``          ``InvalidClientTokenId``
wrong signature, stale ``InvalidSignatureException``            ``SignatureDoesNotMatch``
=====================  ======================================  ===========================

The ``status_hint`` of each error is set to what AWS answers: 400 for JSON services (ECS
answers ``UnrecognizedClientException`` with 400), 403 for the query protocol except
``IncompleteSignature`` (400).

Session tokens (``X-Amz-Security-Token``) are not checked: portside issues plain long-term
keys, and a token header is treated as just another signed header.
"""

from __future__ import annotations

import configparser
import csv
import functools
import hashlib
import hmac
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import cast
from urllib.parse import quote, unquote_plus

from portside.errors import AuthError

__all__ = [
    "ALGORITHM",
    "MAX_CLOCK_SKEW",
    "MAX_PRESIGNED_EXPIRES_S",
    "load_credentials",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
#: How far X-Amz-Date may be from the server clock before AWS rejects it ("- 5 min.").
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The longest a pre-signed URL may live (X-Amz-Expires), as AWS allows: one week.
MAX_PRESIGNED_EXPIRES_S = 604800

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TIMESTAMP_RE = re.compile(r"^\d{8}T\d{6}Z$")
_SCOPE_TERMINATOR = "aws4_request"
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ACCESS_KEY_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,128}$")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")

# AWS's own wording, as quoted in real AWS error output: "Request is missing Authentication Token"
# and "The security token included in the request is invalid." (ECS/ECR/DynamoDB answers, e.g.
# aws/aws-sdk-php#1114, aws-azure-login#37); the signature-mismatch text and the
# IncompleteSignature / scope / "Signature expired" texts as recorded against real DynamoDB by
# mhart/dynalite (index.js) and quoted in user reports (e.g. "Signature expired: 20141106T010406Z
# is now earlier than 20141106T011252Z (20141106T011752Z - 5 min.)", cloudfoundry bosh docs).
MSG_MISSING_TOKEN = "Request is missing Authentication Token"
MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_HOST_NOT_SIGNED = "'Host' must be a 'SignedHeader' in the AWS Authorization."
MSG_TARGET_NOT_SIGNED = "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
MSG_CONTENT_SHA256_MISMATCH = "The provided 'x-amz-content-sha256' header does not match what was computed."

_CODES: dict[str, dict[str, tuple[str, int]]] = {
    "json": {
        "missing": ("MissingAuthenticationTokenException", 400),
        "incomplete": ("IncompleteSignatureException", 400),
        "unknown_key": ("UnrecognizedClientException", 400),
        "bad_signature": ("InvalidSignatureException", 400),
    },
    "query": {
        "missing": ("MissingAuthenticationToken", 403),
        "incomplete": ("IncompleteSignature", 400),
        "unknown_key": ("InvalidClientTokenId", 403),
        "bad_signature": ("SignatureDoesNotMatch", 403),
    },
}

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


# --------------------------------------------------------------------------- credentials


def load_credentials(path: str) -> dict[str, str]:
    """Read access keys from a file and return ``{access_key_id: secret_access_key}``.

    Accepted formats (detected from the content):

    - the AWS shared-credentials INI file (``~/.aws/credentials``): ``[profile]`` sections
      with ``aws_access_key_id`` and ``aws_secret_access_key``; sections with neither
      (e.g. only ``region``) are skipped;
    - one ``KEY:SECRET`` or ``KEY,SECRET`` per line; blank lines and ``#`` comments ignored;
    - the CSV the AWS console downloads, with ``Access key ID`` and ``Secret access key``
      columns in a header row.

    Raises:
        ValueError: the file is malformed; the message names the file and the line or section.
        OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8-sig") as fh:
        text = fh.read()
    meaningful = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ";"))
    ]
    if not meaningful:
        raise ValueError(f"{path}: no credentials found (the file is empty)")
    if meaningful[0].startswith("["):
        creds = _load_ini(path, text)
    elif "access key id" in meaningful[0].lower():
        creds = _load_console_csv(path, text)
    else:
        creds = _load_lines(path, text)
    if not creds:
        raise ValueError(f"{path}: no credentials found (no section has aws_access_key_id)")
    return creds


def _add_credential(creds: dict[str, str], key: str, secret: str, path: str, where: str) -> None:
    if not _ACCESS_KEY_RE.match(key):
        raise ValueError(f"{path}: {where}: access key id {key!r} is not a valid access key id")
    if not secret or any(ch.isspace() for ch in secret):
        raise ValueError(f"{path}: {where}: secret access key for {key!r} is empty or contains whitespace")
    if key in creds and creds[key] != secret:
        raise ValueError(f"{path}: {where}: access key id {key!r} appears twice with different secrets")
    creds[key] = secret


def _load_ini(path: str, text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00portside-no-default")
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateSectionError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: section [{exc.section}] appears twice") from exc
    except configparser.DuplicateOptionError as exc:
        raise ValueError(
            f"{path}: line {exc.lineno}: section [{exc.section}]: {exc.option} appears twice"
        ) from exc
    except configparser.MissingSectionHeaderError as exc:
        raise ValueError(
            f"{path}: line {exc.lineno}: expected a [profile] header, got {exc.line.strip()!r}"
        ) from exc
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise ValueError(f"{path}: line {lineno}: expected 'name = value', got {line.strip()!r}") from exc
    except configparser.Error as exc:
        raise ValueError(f"{path}: not a valid credentials file: {exc}") from exc
    creds: dict[str, str] = {}
    for section in parser.sections():
        key = parser.get(section, "aws_access_key_id", fallback=None)
        secret = parser.get(section, "aws_secret_access_key", fallback=None)
        if key is None and secret is None:
            continue
        if not key or not secret:
            missing = "aws_secret_access_key" if key else "aws_access_key_id"
            raise ValueError(f"{path}: section [{section}]: {missing} is missing or empty")
        _add_credential(creds, key.strip(), secret.strip(), path, f"section [{section}]")
    return creds


def _load_lines(path: str, text: str) -> dict[str, str]:
    creds: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        sep = ":" if ":" in line else ","
        key, found, secret = line.partition(sep)
        if not found or not key.strip() or not secret.strip():
            raise ValueError(f"{path}: line {lineno}: expected KEY:SECRET or KEY,SECRET, got {line!r}")
        if sep == "," and "," in secret:
            raise ValueError(f"{path}: line {lineno}: expected two comma-separated fields, got {line!r}")
        _add_credential(creds, key.strip(), secret.strip(), path, f"line {lineno}")
    return creds


def _load_console_csv(path: str, text: str) -> dict[str, str]:
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]]
    try:
        key_col = header.index("access key id")
        secret_col = header.index("secret access key")
    except ValueError:
        raise ValueError(
            f"{path}: line 1: a CSV header needs 'Access key ID' and 'Secret access key' columns"
        ) from None
    creds: dict[str, str] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(key_col, secret_col):
            raise ValueError(f"{path}: line {lineno}: expected {len(header)} columns, got {len(row)}")
        _add_credential(creds, row[key_col].strip(), row[secret_col].strip(), path, f"line {lineno}")
    return creds


# --------------------------------------------------------------------------- parsing


def _parse_authorization(header: str) -> tuple[str, dict[str, str], list[str]]:
    """Split ``AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..``.

    Returns (algorithm, params, malformed-part messages). Parts may be separated by commas,
    spaces or both, as AWS accepts.
    """
    algorithm, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    problems: list[str] = []
    for part in re.split(r"[,\s]+", rest.strip()):
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq:
            problems.append(
                f"'{name}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
            )
            continue
        params[name] = value
    return algorithm, params, problems


def _header_map(headers: HeadersLike) -> dict[str, list[str]]:
    """Lower-cased name -> values in arrival order. Accepts a dict, an HTTPMessage or pairs."""
    items = getattr(headers, "items", None)
    pairs: Iterable[tuple[str, str]] = (
        items() if callable(items) else cast(Iterable[tuple[str, str]], headers)
    )
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name.lower(), []).append(value)
    return result


def _parse_query(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for pair in query_string.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        # '+' means a space: botocore sends AWSRequest.params through urlencode() (quote_plus)
        # while it signs the decoded value, so decoding must treat '+' as a space.
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


# --------------------------------------------------------------------------- canonical request


def _normalize_path(path: str) -> str:
    """botocore.utils.normalize_url_path: drop '.', resolve '..', squeeze '//'."""
    if not path:
        return "/"
    segments: list[str] = []
    for seg in path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if segments:
                segments.pop()
        else:
            segments.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and segments else ""
    return first + "/".join(segments) + last


def _canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_request(
    method: str,
    path: str,
    query_pairs: Iterable[tuple[str, str]],
    header_map: Mapping[str, list[str]],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    lines = [
        f"{name}:{','.join(' '.join(v.split()) for v in header_map.get(name, []))}" for name in signed_headers
    ]
    return "\n".join(
        [
            method.upper(),
            quote(_normalize_path(path), safe="/~"),
            _canonical_query(query_pairs),
            "\n".join(lines) + "\n",
            ";".join(signed_headers),
            payload_hash,
        ]
    )


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, _SCOPE_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# --------------------------------------------------------------------------- verification


class _Fail:
    """Raises AuthError with the protocol's code for a failure kind."""

    def __init__(self, protocol: str) -> None:
        if protocol not in _CODES:
            raise ValueError(f"protocol must be 'json' or 'query', got {protocol!r}")
        self._codes = _CODES[protocol]
        self.protocol = protocol

    def __call__(self, kind: str, message: str) -> AuthError:
        code, status = self._codes[kind]
        err = AuthError(message, code)
        err.status_hint = status
        return err


def _fmt(ts: datetime) -> str:
    return ts.strftime(_TIMESTAMP_FORMAT)


def _check_clock(request_ts: datetime, now: datetime, fail: _Fail) -> None:
    if request_ts < now - MAX_CLOCK_SKEW:
        raise fail(
            "bad_signature",
            f"Signature expired: {_fmt(request_ts)} is now earlier than "
            f"{_fmt(now - MAX_CLOCK_SKEW)} ({_fmt(now)} - 5 min.)",
        )
    if request_ts > now + MAX_CLOCK_SKEW:
        raise fail(
            "bad_signature",
            f"Signature not yet current: {_fmt(request_ts)} is still later than "
            f"{_fmt(now + MAX_CLOCK_SKEW)} ({_fmt(now)} + 5 min.)",
        )


def _parse_timestamp(value: str, fail: _Fail) -> datetime:
    if not _TIMESTAMP_RE.match(value):
        raise fail(
            "incomplete",
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601",
        )
    try:
        return datetime.strptime(value, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise fail(
            "incomplete",
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601",
        ) from None


def _check_scope(
    credential: str, timestamp: str, expected_service: str | None, fail: _Fail
) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5:
        raise fail(
            "incomplete",
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'",
        )
    access_key, date, region, service, terminator = parts
    problems = []
    if not _REGION_RE.match(region):
        problems.append(f"Credential should be scoped to a valid region, not '{region}'. ")
    if expected_service is not None and service != expected_service:
        problems.append(f"Credential should be scoped to correct service: '{expected_service}'. ")
    elif not service:
        problems.append("Credential should be scoped to a valid service. ")
    if terminator != _SCOPE_TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{_SCOPE_TERMINATOR}', not '{terminator}'. "
        )
    if date != timestamp[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    if problems:
        raise fail("bad_signature", "".join(problems).strip())
    return access_key, date, region, service


def scope_service(headers: HeadersLike, query_string: str) -> str | None:
    """The signing service a request's credential scope names, unverified (for routing only:
    :func:`verify` then checks the signature against that same service). None if it has none."""
    authorization = _header_map(headers).get("authorization", [""])[0]
    credential = ""
    if authorization.strip().startswith("AWS4-"):
        credential = _parse_authorization(authorization)[1].get("Credential", "")
    else:
        credential = next((v for k, v in _parse_query(query_string) if k == "X-Amz-Credential"), "")
    parts = credential.split("/")
    return parts[3] if len(parts) == 5 else None


def verify(
    method: str,
    path: str,
    query_string: str,
    headers: HeadersLike,
    body: bytes,
    credentials: Mapping[str, str],
    now: datetime,
    protocol: str,
    *,
    expected_service: str | None = None,
    accept_unknown_keys: bool = False,
) -> tuple[str, str]:
    """Check the SigV4 signature of one request.

    Args:
        method: the HTTP method as received.
        path: the request-target path exactly as received (still percent-encoded), without
            the query. A ``?query`` suffix is split off if ``query_string`` is empty.
        query_string: the raw query string (no leading ``?``), possibly empty.
        headers: the received headers, as a mapping (dict, ``http.client.HTTPMessage``) or a
            list of ``(name, value)`` pairs; names are matched case-insensitively and repeated
            headers are joined with ``,`` as SigV4 requires.
        body: the raw request body.
        credentials: access key id -> secret access key (see :func:`load_credentials`).
        now: the server clock (a naive datetime is taken as UTC).
        protocol: ``"json"`` or ``"query"``; selects AWS's error codes.
        expected_service: when given, the credential scope must name this signing service
            (``ecs``, ``elasticloadbalancing``, ``application-autoscaling``).
        accept_unknown_keys: an access key not in ``credentials`` is accepted (portside's
            loopback default: any key works there). Everything but the signature value is still
            checked: the form, the clock, the scope, the signed headers and the body hash.

    A received ``X-Amz-Target`` header must be among the signed headers (as ``Host`` must):
    otherwise a signed request could be replayed against another operation.

    Returns:
        ``(access_key, region)`` from the verified credential scope.

    Raises:
        AuthError: with AWS's code for ``protocol`` and AWS's message.
        ValueError: ``protocol`` is not ``"json"`` or ``"query"``.
    """
    fail = _Fail(protocol)
    if "?" in path and not query_string:
        path, _, query_string = path.partition("?")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    header_map = _header_map(headers)
    query_pairs = _parse_query(query_string)
    authorization = header_map.get("authorization", [None])[0]
    presigned = any(k == "X-Amz-Algorithm" for k, _ in query_pairs)

    if authorization is not None and presigned:
        raise fail(
            "bad_signature",
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )
    if presigned:
        return _verify_presigned(
            method, path, query_pairs, header_map, body, credentials, now, fail, expected_service,
            accept_unknown_keys,
        )
    if authorization is None or not authorization.strip().startswith("AWS4-"):
        raise fail("missing", MSG_MISSING_TOKEN)

    algorithm, params, problems = _parse_authorization(authorization)
    if problems:
        raise fail("incomplete", problems[0])
    amz_date = header_map.get("x-amz-date", [None])[0]
    missing = [
        f"Authorization header requires '{name}' parameter. "
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    timestamp: str | None = amz_date
    if timestamp is None and "date" in header_map:
        try:
            timestamp = _fmt(parsedate_to_datetime(header_map["date"][0]).astimezone(UTC))
        except (TypeError, ValueError):
            raise fail(
                "incomplete",
                f"Date must be in ISO-8601 'basic format'. Got '{header_map['date'][0]}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601",
            ) from None
    if timestamp is None:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        )
    if missing:
        raise fail("incomplete", "".join(missing) + f"Authorization={authorization}")
    assert timestamp is not None

    _check_clock(_parse_timestamp(timestamp, fail), now, fail)
    signed_headers = params["SignedHeaders"].lower().split(";")
    if "host" not in signed_headers:
        raise fail("bad_signature", MSG_HOST_NOT_SIGNED)
    if algorithm != ALGORITHM:
        raise fail("incomplete", f"Unsupported AWS 'algorithm': '{algorithm}' (only {ALGORITHM} for now). ")
    access_key, date, region, service = _check_scope(params["Credential"], timestamp, expected_service, fail)
    _check_target_signed(signed_headers, header_map, fail)
    secret = credentials.get(access_key)
    if secret is None and not accept_unknown_keys:
        raise fail("unknown_key", MSG_INVALID_TOKEN)

    payload_hash = _payload_hash(header_map, signed_headers, body, fail)
    if secret is not None:
        canonical = _canonical_request(method, path, query_pairs, header_map, signed_headers, payload_hash)
        _compare(canonical, timestamp, date, region, service, secret, params["Signature"], fail)
    elif not _SIGNATURE_RE.match(params["Signature"]):
        raise fail("bad_signature", MSG_SIGNATURE_MISMATCH)
    return access_key, region


def _verify_presigned(
    method: str,
    path: str,
    query_pairs: list[tuple[str, str]],
    header_map: Mapping[str, list[str]],
    body: bytes,
    credentials: Mapping[str, str],
    now: datetime,
    fail: _Fail,
    expected_service: str | None,
    accept_unknown_keys: bool,
) -> tuple[str, str]:
    """The pre-signed URL form: the auth parameters travel in the query string."""
    q = dict(query_pairs)
    missing = [
        f"AWS query-string parameters must include '{name}'. "
        for name in ("X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date")
        if not q.get(name)
    ]
    if missing:
        raise fail("incomplete", "".join(missing) + "Re-examine the query-string parameters.")
    if q["X-Amz-Algorithm"] != ALGORITHM:
        raise fail(
            "incomplete",
            f"Unsupported AWS 'algorithm': '{q['X-Amz-Algorithm']}' (only {ALGORITHM} for now). ",
        )
    timestamp = q["X-Amz-Date"]
    request_ts = _parse_timestamp(timestamp, fail)
    expires_raw = q.get("X-Amz-Expires", "")
    if expires_raw:
        if not expires_raw.isdigit():
            raise fail("incomplete", f"X-Amz-Expires must be a whole number of seconds, got '{expires_raw}'.")
        expires = int(expires_raw)
        if expires > MAX_PRESIGNED_EXPIRES_S:
            raise fail(
                "incomplete",
                f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_S}",
            )
        # The URL is good from its date until date + expires (allowing the usual skew at the start).
        if request_ts > now + MAX_CLOCK_SKEW:
            _check_clock(request_ts, now, fail)
        if now > request_ts + timedelta(seconds=expires):
            raise fail(
                "bad_signature",
                f"Signature expired: {_fmt(request_ts)} is now earlier than "
                f"{_fmt(now - timedelta(seconds=expires))} ({_fmt(now)} - {expires} sec.)",
            )
    else:
        _check_clock(request_ts, now, fail)
    signed_headers = q["X-Amz-SignedHeaders"].lower().split(";")
    if "host" not in signed_headers:
        raise fail("bad_signature", MSG_HOST_NOT_SIGNED)
    access_key, date, region, service = _check_scope(q["X-Amz-Credential"], timestamp, expected_service, fail)
    _check_target_signed(signed_headers, header_map, fail)
    secret = credentials.get(access_key)
    if secret is None and not accept_unknown_keys:
        raise fail("unknown_key", MSG_INVALID_TOKEN)
    payload_hash = _payload_hash(header_map, signed_headers, body, fail)
    if secret is not None:
        unsigned_pairs = [(k, v) for k, v in query_pairs if k != "X-Amz-Signature"]
        canonical = _canonical_request(method, path, unsigned_pairs, header_map, signed_headers, payload_hash)
        _compare(canonical, timestamp, date, region, service, secret, q["X-Amz-Signature"], fail)
    elif not _SIGNATURE_RE.match(q["X-Amz-Signature"]):
        raise fail("bad_signature", MSG_SIGNATURE_MISMATCH)
    return access_key, region


def _check_target_signed(signed_headers: list[str], header_map: Mapping[str, list[str]], fail: _Fail) -> None:
    """A received ``X-Amz-Target`` must be signed: it names the operation the signature allows."""
    if "x-amz-target" in header_map and "x-amz-target" not in signed_headers:
        raise fail("bad_signature", MSG_TARGET_NOT_SIGNED)


def _payload_hash(
    header_map: Mapping[str, list[str]], signed_headers: list[str], body: bytes, fail: _Fail
) -> str:
    actual = hashlib.sha256(body).hexdigest()
    # botocore uses X-Amz-Content-SHA256 verbatim when present. We honour it only if it was
    # signed, and only if it is the body's real hash: anything else (UNSIGNED-PAYLOAD, a
    # streaming marker, a forged value) would leave the body unauthenticated.
    if "x-amz-content-sha256" in signed_headers and "x-amz-content-sha256" in header_map:
        claimed = header_map["x-amz-content-sha256"][0].strip()
        if claimed != actual:
            raise fail("bad_signature", MSG_CONTENT_SHA256_MISMATCH)
        return claimed
    return actual


def _compare(
    canonical: str,
    timestamp: str,
    date: str,
    region: str,
    service: str,
    secret: str,
    provided: str,
    fail: _Fail,
) -> None:
    scope = f"{date}/{region}/{service}/{_SCOPE_TERMINATOR}"
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    expected = hmac.new(
        _signing_key(secret, date, region, service), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if _SIGNATURE_RE.match(provided) and hmac.compare_digest(expected, provided):
        return
    message = MSG_SIGNATURE_MISMATCH
    if fail.protocol == "json":
        # JSON services append the strings they computed, which is what makes a signing bug
        # debuggable; neither contains the secret.
        message += (
            f"\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{string_to_sign}'\n"
        )
    raise fail("bad_signature", message)
