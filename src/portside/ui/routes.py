"""The dashboard's HTTP side: ``/ui`` pages, assets, state, live stream and actions on the API's port.

Access (docs/dashboard.md):

- every ``/ui`` request first passes the API's own boundary (``ApiServer._check_boundary``: the
  Host must name the API, an Origin must be its own), so a DNS-rebinding page cannot read it;
- a peer on loopback opens the views without credentials (unless the server runs with
  ``--auth always``); anyone else signs in with an access key and its secret from
  ``--credentials`` and gets a session cookie (HttpOnly, SameSite=Strict, Secure under TLS,
  random id, expires after ``sessions.SESSION_TTL_S``);
- actions (POST ``/ui/api/actions``) need a session, a same-origin request (an ``Origin`` or
  ``Sec-Fetch-Site: same-origin``; a request with neither is refused) and the session's CSRF token
  in ``X-Portside-CSRF``;
- every answer carries a CSP without inline script, frame-ancestors 'none', X-Frame-Options DENY,
  nosniff and Referrer-Policy no-referrer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

from portside.config import is_loopback
from portside.errors import AuthError, InvalidParameterException, PortsideError, SerializationError
from portside.ui import views
from portside.ui.actions import run_action
from portside.ui.collect import collect
from portside.ui.live import LiveUpdates, StreamsFull
from portside.ui.logs import task_log_tail
from portside.ui.sessions import COOKIE_NAME, Session, Sessions, check_credentials, tokens_match

if TYPE_CHECKING:
    from portside.api.server import ApiServer

CSRF_HEADER = "X-Portside-CSRF"
MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the package's static/ folder by name, with its content type (read once)."""
    assets: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("portside.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


class Dashboard:
    def __init__(self, api: ApiServer, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.clock = clock
        self.sessions = Sessions()
        self.assets = load_assets()
        self.live = LiveUpdates(self.state, self._health_now)
        plane = api.plane
        plane.store.commit_watchers.append(self.live.poke)
        plane.watchers.append(self.live.poke)
        plane.task_watchers.append(self.live.poke)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ui", self._guard(self.page))
        app.router.add_get("/ui/", self._guard(self.page))
        app.router.add_get("/ui/signin", self._guard(self.signin_page))
        app.router.add_post("/ui/signin", self._guard(self.signin))
        app.router.add_post("/ui/signout", self._guard(self.signout))
        app.router.add_get("/ui/static/{name}", self._guard(self.asset))
        app.router.add_get("/ui/api/session", self._guard(self.session_info))
        app.router.add_get("/ui/api/state", self._guard(self.state_json))
        app.router.add_get("/ui/api/events", self._guard(self.events))
        app.router.add_get("/ui/api/logs", self._guard(self.logs))
        app.router.add_post("/ui/api/actions", self._guard(self.action))

    def start(self) -> None:
        self.live.bind(asyncio.get_running_loop())

    def close(self) -> None:
        self.live.close()

    # -- state

    def state(self) -> dict[str, Any]:
        return views.build_state(collect(self.api.plane, self.clock()))

    def _health_now(self, state: dict[str, Any]) -> list[str]:
        lb = self.api.plane.lb
        if lb is None:
            return []
        return [
            lb.target_health(tg["arn"], t["id"], int(t["port"] or 0)).state
            for tg in state.get("targetGroups", []) for t in tg["targets"]
        ]

    # -- access

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self.api._check_boundary(request, "json")
                response = await handler(request)
            except PortsideError as exc:
                response = web.json_response({"__type": exc.code, "message": exc.message}, status=exc.status_hint)
            if not response.prepared:  # a stream set its headers itself
                response.headers.update(SECURITY_HEADERS)
            return response

        return guarded

    def _open_on_loopback(self, request: web.Request) -> bool:
        return self.api.auth == "loopback" and is_loopback(request.remote or "")

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE_NAME), self.clock())

    def _require_viewer(self, request: web.Request) -> Session | None:
        session = self._session(request)
        if session is None and not self._open_on_loopback(request):
            raise AuthError("Sign in at /ui/signin first: off loopback the dashboard needs a session.", "AccessDeniedException")
        return session

    def _set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE_NAME, session.id, path="/ui", httponly=True, samesite="Strict",
            secure=self.api.tls is not None, max_age=int(session.expires_at - self.clock()),
        )

    @staticmethod
    def _require_same_origin(request: web.Request) -> None:
        """Origin (already checked to be the API's own by the boundary) or Sec-Fetch-Site must vouch for it."""
        if request.headers.get("Origin") is None and request.headers.get("Sec-Fetch-Site") != "same-origin":
            raise AuthError("This request must come from the dashboard's own page (no Origin header).", "AccessDeniedException")
        if request.headers.get("Sec-Fetch-Site") not in (None, "same-origin"):
            raise AuthError("This request must come from the dashboard's own page (Sec-Fetch-Site).", "AccessDeniedException")

    # -- pages

    async def page(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None and not self._open_on_loopback(request):
            return _see_other("/ui/signin")
        body, content_type = self.assets["index.html"]
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        if session is None:  # a loopback viewer: a session of its own carries its CSRF token
            self._set_cookie(response, self.sessions.create("", self.clock()))
        return response

    async def signin_page(self, request: web.Request, message: str = "", status: int = 200) -> web.StreamResponse:
        body = self.assets["signin.html"][0].decode().replace("<!--message-->", _escape(message))
        return web.Response(text=body, content_type="text/html", charset="utf-8", status=status)

    async def signin(self, request: web.Request) -> web.StreamResponse:
        self._require_same_origin(request)
        body = await request.content.read(MAX_FORM_BYTES + 1)  # at most this much, whatever Content-Length says
        if len(body) > MAX_FORM_BYTES:
            raise SerializationError(f"The sign-in form is larger than {MAX_FORM_BYTES} bytes.")
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        access_key, secret = form.get("accessKey", ""), form.get("secretKey", "")
        if not access_key or not secret:
            return await self.signin_page(request, "Both the access key and the secret key are required.", 400)
        if not check_credentials(self.api.credentials, access_key, secret):
            return await self.signin_page(request, "That access key and secret key are not in this server's --credentials.", 403)
        response = _see_other("/ui")
        self._set_cookie(response, self.sessions.create(access_key, self.clock()))
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        self._require_same_origin(request)
        session = self._session(request)
        if session is not None:
            self.sessions.end(session.id)
        response = _see_other("/ui/signin")
        response.del_cookie(COOKIE_NAME, path="/ui")
        return response

    async def asset(self, request: web.Request) -> web.StreamResponse:
        found = self.assets.get(request.match_info["name"])
        if found is None or found[1] == "text/html":
            return web.Response(status=404, text="No such dashboard asset.\n")
        return web.Response(body=found[0], content_type=found[1])

    # -- data

    async def session_info(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            raise AuthError("No dashboard session: open /ui (on loopback) or sign in at /ui/signin.", "AccessDeniedException")
        return web.json_response({"csrfToken": session.csrf_token, "accessKey": session.access_key, "expiresAt": session.expires_at})

    async def state_json(self, request: web.Request) -> web.StreamResponse:
        self._require_viewer(request)
        _state, text = self.live.snapshot()
        return web.Response(text=text, content_type="application/json")

    async def logs(self, request: web.Request) -> web.StreamResponse:
        self._require_viewer(request)
        tail = task_log_tail(self.api.plane, self.api.plane.config.region, request.query.get("task"))
        return web.json_response(tail)

    async def events(self, request: web.Request) -> web.StreamResponse:
        self._require_viewer(request)
        frames = self.live.frames()
        try:
            first = await frames.__anext__()
        except StreamsFull as exc:
            return web.json_response({"__type": "LimitExceededException", "message": str(exc)}, status=503)
        response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        try:
            await response.write(first.encode())
            async for frame in frames:
                await response.write(frame.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await frames.aclose()
        return response

    async def action(self, request: web.Request) -> web.StreamResponse:
        self._require_same_origin(request)
        session = self._session(request)
        if session is None:
            raise AuthError("Actions need a dashboard session (open /ui or sign in).", "AccessDeniedException")
        if not tokens_match(session.csrf_token, request.headers.get(CSRF_HEADER)):
            raise AuthError(f"The {CSRF_HEADER} header is missing or is not this session's token.", "AccessDeniedException")
        try:
            body = json.loads(await request.read() or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidParameterException(f"The action request is not valid JSON: {exc}") from exc
        result = run_action(self.api.plane, self.api.plane.config.region, body)
        self.live.poke()
        return web.json_response(result)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})
