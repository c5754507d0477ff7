"""``/login`` and ``/logout``: a broker user name and password, checked by the broker."""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pipeline.console.auth import log_in
from pipeline.console.guard import action, client_of, same_origin, state_of
from pipeline.console.session import LOGIN_COOKIE, SESSION_COOKIE, Session, new_token, tokens_match
from pipeline.console.state import ConsoleState
from pipeline.errors import BrokerUnreachableError, CredentialsRefusedError

log = logging.getLogger(__name__)

REFUSED = ("the broker refused this user name and password for vhost {vhost!r} (a console "
           "user needs a management tag and permissions on the vhost)")


def _next(target: str | None) -> str:
    # Only paths of this console: never an open redirect to another site.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _cookie(response: Response, state: ConsoleState, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/",
                        secure=state.console.secure_cookies)


async def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    state = state_of(request)
    token = new_token()
    response = state.templates.TemplateResponse(request, "login.html", {
        "login_token": token, "error": error, "next": _next(request.query_params.get("next")),
        "vhost": state.settings.vhost,
    }, status_code=status)
    _cookie(response, state, LOGIN_COOKIE, token)
    return response


async def login(request: Request) -> Response:
    state = state_of(request)
    form = await request.form()
    user, password, token = (str(form.get(k) or "") for k in ("user", "password", "token"))
    if not tokens_match(request.cookies.get(LOGIN_COOKIE, ""), token) or not same_origin(request):
        return await login_page(request, "the login form expired; please try again", 403)
    if not user or not password:
        return await login_page(request, "enter a broker user name and password", 400)
    try:
        identity, acting = await log_in(state.settings, user, password)
    except CredentialsRefusedError:
        log.warning("console: login refused by the broker for user %r from %s", user,
                    client_of(request))
        return await login_page(request, REFUSED.format(vhost=state.settings.vhost), 401)
    except BrokerUnreachableError as exc:
        return await login_page(request, f"the broker does not answer: {exc}", 503)
    session = state.sessions.create(identity, acting)
    log.info("console: %s logged in from %s (tags: %s)", identity.user, client_of(request),
             ",".join(identity.tags) or "none")
    response = RedirectResponse(_next(str(form.get("next") or "/")), status_code=303)
    _cookie(response, state, SESSION_COOKIE, session.id)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@action
async def logout(request: Request, state: ConsoleState, session: Session,
                 form: FormData) -> Response:
    state.sessions.drop(session.id)
    log.info("console: %s logged out", session.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
