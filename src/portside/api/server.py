"""The AWS-compatible HTTP endpoint (one port for every API portside serves).

Requests are routed by protocol: JSON 1.1 with ``X-Amz-Target`` (ECS), and
later the query protocol (ELBv2). Every ``PortsideError`` becomes AWS's error
shape in ``_error_response``; anything else is logged with its traceback and
answered as a plain ServerException with a request id — never a traceback.

Signatures are checked only for peers outside loopback (spec: a task definition
can ask for ``privileged`` and host volumes, so an open API is root on the host).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from portside.api import ecs, shapes, sigv4
from portside.config import is_loopback
from portside.control.plane import ControlPlane
from portside.errors import AuthError, PortsideError, SerializationError, UnknownOperation

log = logging.getLogger("portside.api")

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 16 * 1024 * 1024


class ApiServer:
    def __init__(self, plane: ControlPlane, credentials: dict[str, str] | None) -> None:
        self.plane = plane
        self.credentials = credentials or {}
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_post("/", self.handle)
        self.app.router.add_get("/", self.hello)
        self.app.router.add_get("/healthz", self.hello)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def hello(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "portside", "region": self.plane.config.region})

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        target = request.headers.get("X-Amz-Target", "")
        try:
            body = await request.read()
            if target.startswith(ecs.TARGET_PREFIX):
                region = self._authorize(request, body, "json")
                return self._json_call(ecs.SERVICE, ecs.OPERATIONS, target[len(ecs.TARGET_PREFIX) :], region, body, request_id)
            if target:
                raise UnknownOperation(f"Unknown operation {target}")
            raise UnknownOperation("Request has no X-Amz-Target header naming an operation")
        except PortsideError as exc:
            return _error_response(exc, request_id)
        except Exception:  # the one place a bug becomes a 500: logged here, never shown to the client
            log.exception("request %s failed", request_id)
            return _error_response(PortsideError(f"Internal error (request id {request_id})."), request_id)

    def _authorize(self, request: web.Request, body: bytes, protocol: str) -> str:
        """The request's region; for a non-loopback peer, only after its signature checks out."""
        peer = request.remote or ""
        header = request.headers.get("Authorization")
        if not is_loopback(peer):
            now = datetime.now(timezone.utc)
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
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationError(f"Request body is not valid JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise SerializationError("Request body must be a JSON object")
        shapes.validate_input(model, params)
        result = operation(self.plane, region, params)
        return web.Response(
            body=json.dumps(result).encode(),
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id},
        )


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
