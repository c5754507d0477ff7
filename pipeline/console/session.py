"""Sessions: who is logged in, held in the console's memory, named by an opaque cookie.

The cookie carries only a random session id (HttpOnly, SameSite=Strict,
Secure unless turned off): never the user name or password. The password
stays in this process's memory, inside the user's ``PipelineSettings``
(a ``SecretStr``), because every broker operation acts as the user; it ends
with the session (idle timeout, maximum lifetime, logout, restart).

Every form that changes something carries the session's CSRF token, checked
with a constant-time comparison; the login form, before any session exists,
uses a token in a cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from pipeline.console.auth import Identity
from pipeline.settings import PipelineSettings

SESSION_COOKIE = "pipeline_console_session"
LOGIN_COOKIE = "pipeline_console_login"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str, given: str | None) -> bool:
    """Whether ``given`` is ``expected`` (constant time; a missing token never matches)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass
class Session:
    """One logged-in user: their identity, the settings that act as them, a CSRF token."""

    id: str
    identity: Identity
    acting: PipelineSettings = field(repr=False)
    csrf: str = field(default_factory=new_token, repr=False)
    created: float = field(default_factory=lambda: time.monotonic())
    seen: float = field(default_factory=lambda: time.monotonic())

    @property
    def user(self) -> str:
        return self.identity.user


class SessionStore:
    """Sessions by id, ended after ``idle_s`` without a request or ``max_s`` in all."""

    def __init__(self, idle_s: float, max_s: float) -> None:
        self._idle_s = idle_s
        self._max_s = max_s
        self._sessions: dict[str, Session] = {}

    def create(self, identity: Identity, acting: PipelineSettings) -> Session:
        self._expire()
        session = Session(new_token(), identity, acting)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle clock restarts), or None."""
        if not session_id:
            return None
        self._expire()
        session = self._sessions.get(session_id)
        if session is not None:
            session.seen = time.monotonic()
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if now - session.seen > self._idle_s or now - session.created > self._max_s:
                del self._sessions[sid]
