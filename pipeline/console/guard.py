"""Request guards: a page needs a session, an action also a matching CSRF token and origin."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from pipeline.console.session import SESSION_COOKIE, Session, tokens_match
from pipeline.console.state import ConsoleState

log = logging.getLogger(__name__)

Page = Callable[[Request, ConsoleState, Session], Awaitable[Response]]
Action = Callable[[Request, ConsoleState, Session, FormData], Awaitable[Response]]


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _session(request: Request) -> Session | None:
    state = state_of(request)
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    request.state.session = session
    return session


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for logged-in users; others go to the login page (fragments get 401)."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        session = _session(request)
        if session is None:
            if request.url.path.startswith("/fragments/"):
                return PlainTextResponse("session ended; log in again", status_code=401)
            return _to_login(request)
        return await handler(request, state_of(request), session)

    return guarded


def same_origin(request: Request) -> bool:
    """Whether the request's Origin (or Referer) names this console, when a browser sent one."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", request.url.netloc)


def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
    """A POST that changes something: a session, the session's CSRF token, our own origin."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        session = _session(request)
        if session is None:
            return _to_login(request)
        form = await request.form()
        token = form.get("csrf")
        if not tokens_match(session.csrf, token if isinstance(token, str) else None) \
                or not same_origin(request):
            log.warning("console: refused %s %s from %s: missing or wrong CSRF token or origin",
                        request.method, request.url.path, client_of(request))
            return PlainTextResponse(
                "refused: this form is not from your console session (CSRF check failed); "
                "reload the page and try again", status_code=403)
        return await handler(request, state_of(request), session, form)

    return guarded
