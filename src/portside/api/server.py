"""The AWS-compatible HTTP endpoint (one port for every API portside serves).

Requests are routed by protocol: JSON 1.0/1.1 with ``X-Amz-Target`` (ECS, Application Auto Scaling,
CloudWatch, and portside's own ``Portside.<Action>`` actions such as ``Portside.ImportCertificate``);
Smithy RPC v2 CBOR (``POST /service/<target prefix>/operation/<Action>``, what botocore sends
CloudWatch by default) for the ``JSON_APIS`` whose botocore model lists that protocol; and the
query protocol (ELBv2, CloudWatch): a form-encoded POST without ``X-Amz-Target`` whose ``Action``
names the operation (``Version`` is accepted whatever it says), routed to ``QUERY_APIS`` by the
signing service its SigV4 credential scope names (``elasticloadbalancing`` or ``monitoring``). Every
``PortsideError`` becomes AWS's error shape for the request's protocol
(``_error_response`` for JSON, ``_query_error_response`` for query: XML, ``Sender``
for 4xx, ``Receiver`` for 5xx); anything else is logged with its traceback and
answered as a plain ServerException / InternalFailure with a request id — never a
traceback. A query request with no ``Action`` answers 400 ``MissingAction``, an
``Action`` portside does not serve 400 ``InvalidAction``.

Trust boundary (a task definition can ask for ``privileged`` and host volumes, so whoever
drives the API is root on the host). Before any operation runs, in this order:

1. the ``Host`` header must name the API and an ``Origin`` header, when present, must be the
   API's own origin (``core/api_boundary.py``: DNS rebinding and cross-site browser requests),
   else 403 ``AccessDeniedException`` (JSON) / ``AccessDenied`` (query);
2. every request must carry a SigV4 signature (header or pre-signed query), scoped to the
   signing service of the API it calls (``ecs``, ``elasticloadbalancing`` for ELBv2 and
   ``Portside.*``, ``application-autoscaling``), with ``X-Amz-Target`` signed when present.
   Peers on loopback may use any access key (only the form is checked) unless the server runs
   with ``--auth always``; everyone else needs a key from ``--credentials``. Refusals are 403.

Smithy RPC v2 CBOR errors are CBOR ``{"__type", "message"}`` with ``smithy-protocol: rpc-v2-cbor``.

``/healthz``, ``/metrics`` and ``GET /`` are read-only and stay open. ``/ui`` is the dashboard
(``portside/ui``, docs/dashboard.md): the same Host/Origin boundary, then its own sign-in.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from portside.api import agents, autoscaling, cbor, cloudwatch, ecs, elbv2, logs, secretsmanager, shapes, sigv4, ssm
from portside.config import is_loopback
from portside.control.plane import ControlPlane
from portside.control.store.database import StoreUnavailable
from portside.core.api_boundary import ApiIdentity, host_problem, origin_problem
from portside.errors import AuthError, PortsideError, SerializationError, UnknownOperation
from portside.ui.routes import Dashboard

log = logging.getLogger("portside.api")

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 16 * 1024 * 1024
# Far deeper than any ECS or ELBv2 shape; keeps recursive code behind the edge (validation,
# storing unknown members as submitted) well inside Python's recursion limit.
MAX_JSON_DEPTH = 100
#: How long a closing API lets requests still running finish.
SHUTDOWN_TIMEOUT_S = 2.0
#: ``--auth`` modes: any access key on loopback (the default), or only keys in --credentials.
AUTH_MODES = ("loopback", "always")


@dataclass(frozen=True)
class JsonApi:
    """An AWS API served over JSON with ``X-Amz-Target: <prefix><Action>``."""

    prefix: str  # the X-Amz-Target prefix, with its dot
    service: str  # botocore's name for the service (whose model validates the input)
    signing: str  # the SigV4 signing service its requests must be scoped to
    operations: dict[str, Any]  # action -> operation(plane, region, params)
    content_type: str = "application/x-amz-json-1.1"


#: Every AWS JSON API this endpoint serves, by X-Amz-Target prefix (add a service here).
JSON_APIS: dict[str, JsonApi] = {
    api.prefix: api
    for api in (
        JsonApi(ecs.TARGET_PREFIX, ecs.SERVICE, "ecs", ecs.OPERATIONS),
        JsonApi(autoscaling.TARGET_PREFIX, autoscaling.SERVICE, "application-autoscaling", autoscaling.OPERATIONS),
        JsonApi(ssm.TARGET_PREFIX, ssm.SERVICE, "ssm", ssm.OPERATIONS),
        JsonApi(secretsmanager.TARGET_PREFIX, secretsmanager.SERVICE, "secretsmanager", secretsmanager.OPERATIONS),
        JsonApi(cloudwatch.TARGET_PREFIX, cloudwatch.SERVICE, cloudwatch.SIGNING_SERVICE, cloudwatch.OPERATIONS,
                "application/x-amz-json-1.0"),
        JsonApi(logs.TARGET_PREFIX, logs.SERVICE, "logs", logs.OPERATIONS),
    )
}
#: The SigV4 signing service each API's requests must be scoped to.
SIGNING_SERVICES = {
    **{prefix: api.signing for prefix, api in JSON_APIS.items()},
    elbv2.PORTSIDE_TARGET_PREFIX: "elasticloadbalancing",
    agents.TARGET_PREFIX: agents.SIGNING_SERVICE,
}


@dataclass(frozen=True)
class QueryApi:
    """An AWS API served over the query protocol (``Action=<Op>``, XML responses)."""

    service: str  # botocore's name for the service
    operations: dict[str, Any]
    namespace: str  # the XML namespace of its responses and errors
    self_validated: dict[str, tuple[str, ...]]  # members an operation range-checks itself


#: Every query-protocol API, by the signing service of the request's credential scope.
QUERY_APIS: dict[str, QueryApi] = {
    "elasticloadbalancing": QueryApi(elbv2.SERVICE, elbv2.OPERATIONS, shapes.ELBV2_NAMESPACE, elbv2.SELF_VALIDATED),
    cloudwatch.SIGNING_SERVICE: QueryApi(cloudwatch.SERVICE, cloudwatch.OPERATIONS, cloudwatch.XML_NAMESPACE, {}),
}
#: The query API of a request whose credential scope names no query API (its signature then fails).
DEFAULT_QUERY_SIGNING_SERVICE = "elasticloadbalancing"
RPC_V2_CBOR = "rpc-v2-cbor"
CBOR_CONTENT_TYPE = "application/cbor"


class ApiServer:
    def __init__(
        self,
        plane: ControlPlane,
        credentials: dict[str, str] | None,
        metrics: Callable[[], str] | None = None,
        *,
        auth: str = "loopback",
        api_hosts: tuple[str, ...] = (),
        tls: ssl.SSLContext | None = None,
        status: Callable[[], tuple[dict[str, Any], bool]] | None = None,
    ) -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
        self.plane = plane
        self.status = status  # /healthz's extra fields, and whether the server is healthy
        self.credentials = credentials or {}
        self.metrics = metrics
        self.auth = auth
        self.api_hosts = api_hosts
        self.tls = tls
        self.identity = ApiIdentity("https" if tls else "http", "", api_hosts)
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_post("/", self.handle)
        self.app.router.add_post("/service/{service}/operation/{operation}", self.handle_rpc_v2)
        self.app.router.add_get("/", self.hello)
        self.app.router.add_get("/healthz", self.hello)
        self.app.router.add_get("/metrics", self.serve_metrics)
        self.dashboard = Dashboard(self)
        self.dashboard.add_routes(self.app)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        # Long polls (agents, load-balancer nodes) would hold a shutdown for up to 25 s: they are
        # asked again after a restart anyway, so requests still running after 2 s are cut.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        self.dashboard.start()
        site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=self.tls)
        await site.start()
        self.identity = ApiIdentity("https" if self.tls else "http", host, self.api_hosts)

    async def close(self) -> None:
        self.dashboard.close()  # ends its live streams, which would otherwise hold the shutdown
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()

    async def serve_metrics(self, request: web.Request) -> web.Response:
        """Prometheus text exposition format 0.0.4 (read-only: not signed, like most exporters)."""
        try:
            text = self.metrics() if self.metrics is not None else ""
        except StoreUnavailable as exc:
            return web.Response(status=503, text=exc.message + "\n", content_type="text/plain")
        return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"Version": "0.0.4"})

    async def hello(self, request: web.Request) -> web.Response:
        """``GET /`` and ``/healthz``: who answers, whether it leads, and the store's revision.

        503 while the store does not answer, so a load balancer in front of the replicas skips this one.
        """
        document: dict[str, Any] = {"service": "portside", "region": self.plane.config.region}
        healthy = True
        if self.status is not None:
            extra, healthy = self.status()
            document.update(extra)
        return web.json_response(document, status=200 if healthy else 503)

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("X-Amz-Target", "")
        query = not target and _is_form(request)
        render = _query_error_response if query else _error_response
        protocol = "query" if query else "json"
        namespace = shapes.ELBV2_NAMESPACE
        try:
            self._check_boundary(request, protocol)
            body = await request.read()
            if query:
                signing = sigv4.scope_service(list(request.headers.items()), request.query_string)
                if signing not in QUERY_APIS:
                    signing = DEFAULT_QUERY_SIGNING_SERVICE
                namespace = QUERY_APIS[signing].namespace
                region = self._authorize(request, body, protocol, signing)
                return self._query_call(QUERY_APIS[signing], request, region, body, request_id)
            prefix = next((p for p in SIGNING_SERVICES if target.startswith(p)), None)
            region = self._authorize(request, body, protocol, SIGNING_SERVICES.get(prefix or ""))
            api = JSON_APIS.get(prefix or "")
            if api is not None:
                return self._json_call(api, target[len(api.prefix) :], region, body, request_id)
            if prefix == elbv2.PORTSIDE_TARGET_PREFIX:
                return await self._portside_call(elbv2.PORTSIDE_OPERATIONS, target, region, body, request_id)
            if prefix == agents.TARGET_PREFIX:
                return await self._portside_call(agents.OPERATIONS, target, region, body, request_id)
            if target:
                raise UnknownOperation(f"Unknown operation {target}")
            raise UnknownOperation("Request has no X-Amz-Target header naming an operation")
        except PortsideError as exc:
            return render(exc, request_id, namespace)
        except web.HTTPRequestEntityTooLarge:  # raised by request.read() beyond client_max_size
            return render(_too_large(), request_id, namespace)
        except Exception:  # the one place a bug becomes a 500: logged here, never shown to the client
            log.exception("request %s failed", request_id)
            return render(PortsideError(f"Internal error (request id {request_id})."), request_id, namespace)

    async def handle_rpc_v2(self, request: web.Request) -> web.Response:
        """Smithy RPC v2 CBOR: ``POST /service/<prefix>/operation/<Action>``, CBOR in and out."""
        request_id = str(uuid.uuid4())
        try:
            self._check_boundary(request, "json")
            body = await request.read()
            api = JSON_APIS.get(request.match_info["service"] + ".")
            region = self._authorize(request, body, "json", api.signing if api is not None else None)
            if request.headers.get("smithy-protocol") != RPC_V2_CBOR:
                raise SerializationError(f"An RPC v2 request must carry the header smithy-protocol: {RPC_V2_CBOR}")
            action = request.match_info["operation"]
            model = shapes.operation_model(api.service, action) if api is not None else None
            if api is None or model is None or "smithy-rpc-v2-cbor" not in model.metadata.get("protocols", ()):
                raise UnknownOperation(f"Unknown operation {request.match_info['service']}.{action}")
            try:
                params = cbor.decode(body) if body else {}
            except cbor.CborError as exc:
                raise SerializationError(f"Request body is not valid CBOR: {exc}") from exc
            if not isinstance(params, dict):
                raise SerializationError("Request body must be a CBOR map")
            _check_json_value(params)
            result = self._call(api, action, model, region, params)
            return web.Response(
                body=cbor.encode(result), content_type=CBOR_CONTENT_TYPE,
                headers={"x-amzn-RequestId": request_id, "smithy-protocol": RPC_V2_CBOR},
            )
        except PortsideError as exc:
            return _cbor_error_response(exc, request_id)
        except web.HTTPRequestEntityTooLarge:
            return _cbor_error_response(_too_large(), request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _cbor_error_response(PortsideError(f"Internal error (request id {request_id})."), request_id)

    def _check_boundary(self, request: web.Request, protocol: str) -> None:
        """403 unless Host names this API and Origin, if any, is its own (core/api_boundary.py)."""
        sockname = request.get_extra_info("sockname")
        local_address = str(sockname[0]) if isinstance(sockname, tuple) and sockname else ""
        host = request.headers.get("Host")
        problem = host_problem(self.identity, host, local_address) or origin_problem(
            self.identity, request.headers.get("Origin"), host
        )
        if problem is not None:
            raise AuthError(problem, "AccessDenied" if protocol == "query" else "AccessDeniedException")

    def _authorize(self, request: web.Request, body: bytes, protocol: str, service: str | None) -> str:
        """The request's region, once its SigV4 signature checks out (any key on loopback unless --auth always).

        ``service``: the signing service the credential scope must name (None: any, for a
        target no API serves, which then answers UnknownOperation).
        """
        any_key = self.auth == "loopback" and is_loopback(request.remote or "")
        try:
            _key, region = sigv4.verify(
                request.method, request.raw_path.split("?", 1)[0], request.query_string,
                list(request.headers.items()), body, self.credentials, datetime.now(UTC), protocol,
                expected_service=service, accept_unknown_keys=any_key,
            )
        except AuthError as exc:
            exc.status_hint = 403  # every refused signature is a 403 here, whatever the code
            raise
        return region

    def _json_call(self, api: JsonApi, action: str, region: str, body: bytes, request_id: str) -> web.Response:
        model = shapes.operation_model(api.service, action)
        if action not in api.operations or model is None:
            raise UnknownOperation(f"Unknown operation {action}")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise SerializationError(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationError("Request body must be a JSON object")
        _check_json_value(params)
        result = self._call(api, action, model, region, params)
        return web.Response(
            body=json.dumps(result, default=_json_timestamp).encode(),
            content_type=api.content_type,
            headers={"x-amzn-RequestId": request_id},
        )

    def _call(self, api: JsonApi, action: str, model: Any, region: str, params: dict[str, Any]) -> Any:
        operation = api.operations.get(action)
        if operation is None:
            raise UnknownOperation(f"Unknown operation {action}")
        shapes.validate_input(model, params)
        return operation(self.plane, region, params)

    def _query_call(self, api: QueryApi, request: web.Request, region: str, body: bytes, request_id: str) -> web.Response:
        """One query-protocol request (ELBv2, CloudWatch): form -> typed params -> operation -> XML."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError("MalformedQueryString", f"The request body is not UTF-8: {exc}") from exc
        try:  # strict: a percent-encoded byte sequence that is not UTF-8 is refused, never replaced
            form = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, errors="strict"))
            form.update(parse_qsl(text, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError as exc:
            raise QueryError("MalformedQueryString", f"A percent-encoded value is not UTF-8: {exc}") from exc
        for key, value in form.items():  # as for JSON bodies (_check_unicode): no store holds NUL in text
            if "\x00" in key or "\x00" in value:
                raise QueryError("ValidationError", f"{key!r} holds a NUL character (%00)")
        action = form.get("Action")
        if not action:
            raise QueryError("MissingAction", "The request must contain the parameter Action.")
        operation = api.operations.get(action)
        model = shapes.operation_model(api.service, action)
        if operation is None or model is None:
            if model is not None:
                message = f"The action {action} is not implemented by portside."
            else:
                message = f"The action {action} is not valid for this web service."
            raise QueryError("InvalidAction", message)
        try:
            params = shapes.parse_query_params(model, form)
        except SerializationError as exc:
            raise QueryError("ValidationError", exc.message) from exc
        own = {k: params.pop(k) for k in api.self_validated.get(action, ()) if k in params}
        shapes.validate_input(model, params)
        params.update(own)
        result = operation(self.plane, region, params)
        return web.Response(
            body=shapes.render_query_response(model, result, request_id),
            content_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    async def _portside_call(
        self, table: dict[str, Any], target: str, region: str, body: bytes, request_id: str
    ) -> web.Response:
        """portside's own JSON actions (``Portside.<Action>``, ``PortsideAgent.<Action>``), outside AWS's models."""
        operation = table.get(target.split(".", 1)[1])
        if operation is None:
            raise UnknownOperation(f"Unknown operation {target}")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SerializationError(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationError("Request body must be a JSON object")
        _check_json_value(params)
        result = operation(self.plane, region, params)
        if inspect.isawaitable(result):
            result = await result
        return web.Response(
            body=json.dumps(result).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id},
        )


class QueryError(PortsideError):
    """A query-protocol front-end error (``MissingAction``, ``InvalidAction``, ...): 400, Sender."""

    status_hint = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_form(request: web.Request) -> bool:
    """A query-protocol request: form-encoded (what botocore sends), or ``Action`` in the URL."""
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded" or "Action" in request.query


def _too_large() -> SerializationError:
    too_large = SerializationError(f"Request body is larger than {MAX_BODY_BYTES} bytes")
    too_large.status_hint = 413
    return too_large


def _json_timestamp(value: Any) -> Any:
    """JSON protocols send timestamps as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _cbor_error_response(exc: PortsideError, request_id: str) -> web.Response:
    """Smithy RPC v2 CBOR's error: a CBOR map with ``__type`` and ``message``."""
    status = exc.status_hint
    code = "InternalFailure" if status >= 500 and exc.code == "ServerException" else exc.code
    return web.Response(
        status=status, body=cbor.encode({"__type": code, "message": exc.message}), content_type=CBOR_CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "smithy-protocol": RPC_V2_CBOR,
                 "x-amzn-query-error": f"{code};{'Sender' if status < 500 else 'Receiver'}"},
    )


def _query_error_response(exc: PortsideError, request_id: str, namespace: str = shapes.ELBV2_NAMESPACE) -> web.Response:
    """AWS's query-protocol error document: Sender for 4xx, Receiver for 5xx."""
    status = exc.status_hint
    code = "InternalFailure" if status >= 500 and exc.code == "ServerException" else exc.code
    body = shapes.render_query_error(code, exc.message, request_id, sender=status < 500, namespace=namespace)
    return web.Response(status=status, body=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})


def _check_json_value(value: Any) -> None:
    """SerializationError unless a decoded JSON body nests at most MAX_JSON_DEPTH levels and every
    string (member names included) is valid Unicode without a NUL character.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 store or response can
    hold; they are refused here, naming the member, before any operation sees them. Walks
    without recursion; a member's path is only spelled out for the error.
    """
    # (value, depth, path): a path is None at the top, else (parent path, member name or index)
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_unicode(item, lambda: _spell(path) or "the body")
            continue
        if isinstance(item, dict):
            for key in item:
                _check_unicode(key, lambda: f"a member name in {_spell(path) or 'the body'}")
            children: Any = ((child, (path, key)) for key, child in item.items())
        elif isinstance(item, list):
            children = ((child, (path, i)) for i, child in enumerate(item))
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise SerializationError(f"Request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep")
        stack.extend((child, depth + 1, child_path) for child, child_path in children)


def _spell(path: Any) -> str:
    """``containerDefinitions[0].name`` from the (parent, key) chain."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def _check_unicode(text: str, where: Callable[[], str]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{where()} is not a valid Unicode string: it holds a lone surrogate "
            f"(\\u{ord(text[exc.start]):04x}) at position {exc.start}"
        ) from None
    if "\x00" in text:  # no store holds it in a name or an id (PostgreSQL refuses it in text)
        raise SerializationError(f"{where()} holds a NUL character (\\u0000) at position {text.index(chr(0))}")


def _error_response(exc: PortsideError, request_id: str, namespace: str = "") -> web.Response:
    if isinstance(exc, AuthError) and exc.code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken"):
        body = shapes.render_query_error(exc.code, exc.message, request_id)
        return web.Response(status=exc.status_hint, body=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})
    payload: dict[str, Any] = {"__type": exc.code, "message": exc.message}
    return web.Response(
        status=exc.status_hint,
        body=json.dumps(payload).encode(),
        content_type=JSON_CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )
