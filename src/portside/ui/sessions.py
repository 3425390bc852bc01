"""The dashboard's browser sessions: a random id in an HttpOnly cookie, a CSRF token, an expiry.

Sessions live in this process's memory only (a restart signs everyone out; a replica does not
know another's sessions). The session id and the CSRF token are 256-bit random values from
``secrets``; the id never leaves the cookie, the token is handed to the page by
``GET /ui/api/session`` (same-origin only: the page's CSP and the API's Origin check keep other
sites from reading it) and must come back in the ``X-Portside-CSRF`` header of every action.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

#: How long a session lasts after it was created (seconds).
SESSION_TTL_S = 12 * 3600
#: At most this many sessions are kept; the oldest is forgotten first.
MAX_SESSIONS = 1000
COOKIE_NAME = "portside_session"


@dataclass(frozen=True)
class Session:
    id: str
    csrf_token: str
    expires_at: float
    # The access key a user signed in with ("" for a loopback session, which needs none).
    access_key: str


class Sessions:
    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._sessions: dict[str, Session] = {}

    def create(self, access_key: str, now: float) -> Session:
        self._forget_expired(now)
        while len(self._sessions) >= self.limit:
            self._sessions.pop(next(iter(self._sessions)))
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.ttl_s, access_key)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, now: float) -> Session | None:
        """The live session with this id, or None (unknown, or expired: then it is forgotten)."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._sessions[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _forget_expired(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]


def check_credentials(credentials: dict[str, str], access_key: str, secret: str) -> bool:
    """True when ``access_key`` is in ``--credentials`` with this secret (compared in constant time)."""
    expected = credentials.get(access_key)
    matched = hmac.compare_digest((expected or "").encode(), secret.encode())
    return expected is not None and bool(expected) and matched


def tokens_match(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
