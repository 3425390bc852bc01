"""The AWS-compatible HTTP endpoint (one port for every API portside serves).

Requests are routed by protocol: JSON 1.1 with ``X-Amz-Target`` (ECS, Application Auto Scaling, and
portside's own ``Portside.<Action>`` actions such as ``Portside.ImportCertificate``),
and the query protocol (ELBv2): a form-encoded POST without ``X-Amz-Target`` whose
``Action`` names the operation (``Version`` is accepted whatever it says). Every
``PortsideError`` becomes AWS's error shape for the request's protocol
(``_error_response`` for JSON, ``_query_error_response`` for query: XML, ``Sender``
for 4xx, ``Receiver`` for 5xx); anything else is logged with its traceback and
answered as a plain ServerException / InternalFailure with a request id — never a
traceback. A query request with no ``Action`` answers 400 ``MissingAction``, an
``Action`` portside does not serve 400 ``InvalidAction``.

Signatures are checked only for peers outside loopback (spec: a task definition
can ask for ``privileged`` and host volumes, so an open API is root on the host).
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from portside.api import autoscaling, ecs, elbv2, shapes, sigv4
from portside.config import is_loopback
from portside.control.plane import ControlPlane
from portside.errors import AuthError, PortsideError, SerializationError, UnknownOperation

log = logging.getLogger("portside.api")

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 16 * 1024 * 1024
# Far deeper than any ECS or ELBv2 shape; keeps recursive code behind the edge (validation,
# storing unknown members as submitted) well inside Python's recursion limit.
MAX_JSON_DEPTH = 100


class ApiServer:
    def __init__(
        self, plane: ControlPlane, credentials: dict[str, str] | None, metrics: Callable[[], str] | None = None
    ) -> None:
        self.plane = plane
        self.credentials = credentials or {}
        self.metrics = metrics
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_post("/", self.handle)
        self.app.router.add_get("/", self.hello)
        self.app.router.add_get("/healthz", self.hello)
        self.app.router.add_get("/metrics", self.serve_metrics)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def serve_metrics(self, request: web.Request) -> web.Response:
        """Prometheus text exposition format 0.0.4 (read-only: not signed, like most exporters)."""
        text = self.metrics() if self.metrics is not None else ""
        return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"Version": "0.0.4"})

    async def hello(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "portside", "region": self.plane.config.region})

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("X-Amz-Target", "")
        query = not target and _is_form(request)
        render = _query_error_response if query else _error_response
        try:
            body = await request.read()
            if query:
                region = self._authorize(request, body, "query")
                return self._query_call(request, region, body, request_id)
            if target.startswith(ecs.TARGET_PREFIX):
                region = self._authorize(request, body, "json")
                return self._json_call(ecs.SERVICE, ecs.OPERATIONS, target[len(ecs.TARGET_PREFIX) :], region, body, request_id)
            if target.startswith(autoscaling.TARGET_PREFIX):
                region = self._authorize(request, body, "json")
                action = target[len(autoscaling.TARGET_PREFIX) :]
                return self._json_call(autoscaling.SERVICE, autoscaling.OPERATIONS, action, region, body, request_id)
            if target.startswith(elbv2.PORTSIDE_TARGET_PREFIX):
                region = self._authorize(request, body, "json")
                return await self._portside_call(target[len(elbv2.PORTSIDE_TARGET_PREFIX) :], region, body, request_id)
            if target:
                raise UnknownOperation(f"Unknown operation {target}")
            raise UnknownOperation("Request has no X-Amz-Target header naming an operation")
        except PortsideError as exc:
            return render(exc, request_id)
        except web.HTTPRequestEntityTooLarge:  # raised by request.read() beyond client_max_size
            too_large = SerializationError(f"Request body is larger than {MAX_BODY_BYTES} bytes")
            too_large.status_hint = 413
            return render(too_large, request_id)
        except Exception:  # the one place a bug becomes a 500: logged here, never shown to the client
            log.exception("request %s failed", request_id)
            return render(PortsideError(f"Internal error (request id {request_id})."), request_id)

    def _authorize(self, request: web.Request, body: bytes, protocol: str) -> str:
        """The request's region; for a non-loopback peer, only after its signature checks out."""
        peer = request.remote or ""
        header = request.headers.get("Authorization")
        if not is_loopback(peer):
            now = datetime.now(UTC)
            try:
                _key, region = sigv4.verify(
                    request.method, request.raw_path.split("?", 1)[0], request.query_string,
                    list(request.headers.items()), body, self.credentials, now, protocol,
                )
            except AuthError as exc:
                exc.status_hint = 403  # every refused signature is a 403 here, whatever the code
                raise
            return region
        scope = sigv4.credential_scope(header)
        return scope[1] if scope else self.plane.config.region

    def _json_call(
        self, service: str, operations: dict[str, Any], action: str, region: str, body: bytes, request_id: str
    ) -> web.Response:
        operation = operations.get(action)
        model = shapes.operation_model(service, action)
        if operation is None or model is None:
            raise UnknownOperation(f"Unknown operation {action}")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise SerializationError(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationError("Request body must be a JSON object")
        if _nesting_depth(params) > MAX_JSON_DEPTH:
            raise SerializationError(f"Request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep")
        shapes.validate_input(model, params)
        result = operation(self.plane, region, params)
        return web.Response(
            body=json.dumps(result).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id},
        )


    def _query_call(self, request: web.Request, region: str, body: bytes, request_id: str) -> web.Response:
        """One ELBv2 query-protocol request: form -> typed params -> operation -> XML."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError("MalformedQueryString", f"The request body is not UTF-8: {exc}") from exc
        form: dict[str, str] = dict(request.query)
        form.update(parse_qsl(text, keep_blank_values=True))
        action = form.get("Action")
        if not action:
            raise QueryError("MissingAction", "The request must contain the parameter Action.")
        operation = elbv2.OPERATIONS.get(action)
        model = shapes.operation_model(elbv2.SERVICE, action)
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
        own = {k: params.pop(k) for k in elbv2.SELF_VALIDATED.get(action, ()) if k in params}
        shapes.validate_input(model, params)
        params.update(own)
        result = operation(self.plane, region, params)
        return web.Response(
            body=shapes.render_query_response(model, result, request_id),
            content_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    async def _portside_call(self, action: str, region: str, body: bytes, request_id: str) -> web.Response:
        """portside's own JSON actions (``X-Amz-Target: Portside.<Action>``), outside AWS's models."""
        operation = elbv2.PORTSIDE_OPERATIONS.get(action)
        if operation is None:
            raise UnknownOperation(f"Unknown operation Portside.{action}")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SerializationError(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationError("Request body must be a JSON object")
        if _nesting_depth(params) > MAX_JSON_DEPTH:
            raise SerializationError(f"Request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep")
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


def _query_error_response(exc: PortsideError, request_id: str) -> web.Response:
    """AWS's query-protocol error document: Sender for 4xx, Receiver for 5xx."""
    status = exc.status_hint
    code = "InternalFailure" if status >= 500 and exc.code == "ServerException" else exc.code
    body = shapes.render_query_error(code, exc.message, request_id, sender=status < 500)
    return web.Response(status=status, body=body, content_type="text/xml", headers={"x-amzn-RequestId": request_id})


def _nesting_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a decoded JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest  # deep enough to refuse: stop walking
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _error_response(exc: PortsideError, request_id: str) -> web.Response:
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
