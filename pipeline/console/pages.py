"""The overview and the failed groups: what an operator looks at first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.console.answer import answer
from pipeline.console.groups import GroupKey, first_line, group_failed, key_of
from pipeline.console.guard import page
from pipeline.console.overview import read_overview
from pipeline.console.session import Session
from pipeline.console.state import ConsoleState
from pipeline.store import Selection

REFRESH_MS = 3000  # the overview's live part


async def _overview_context(state: ConsoleState, session: Session) -> dict[str, object]:
    overview, error = await answer(
        read_overview(session.acting, state.topology, state.ledger, state.flow), session.user)
    return {"overview": overview, "error": error, "refresh_ms": REFRESH_MS}


@page
async def overview_page(request: Request, state: ConsoleState, session: Session) -> Response:
    return state.templates.TemplateResponse(
        request, "overview.html", await _overview_context(state, session))


@page
async def overview_fragment(request: Request, state: ConsoleState, session: Session) -> Response:
    return state.templates.TemplateResponse(
        request, "overview_live.html", await _overview_context(state, session))


@page
async def failed_page(request: Request, state: ConsoleState, session: Session) -> Response:
    found, error = await answer(state.gate.read(session.acting, Selection()), session.user)
    entries, total = found if found is not None else ([], 0)
    return state.templates.TemplateResponse(request, "failed.html", {
        "groups": group_failed(entries), "total": total, "error": error})


def group_key(request: Request) -> GroupKey:
    params = request.query_params
    return GroupKey(params.get("consumer", ""), params.get("type", ""), params.get("error", ""))


@page
async def group_page(request: Request, state: ConsoleState, session: Session) -> Response:
    key = group_key(request)
    found, error = await answer(state.gate.read(session.acting, key.selection), session.user)
    entries = [s for s in (found[0] if found else []) if key_of(s) == key]
    return state.templates.TemplateResponse(request, "group.html", {
        "key": key, "entries": entries[:state.console.rows], "count": len(entries),
        "error": error, "first_line": first_line})


def routes() -> list[Route]:
    return [
        Route("/", overview_page),
        Route("/fragments/overview", overview_fragment),
        Route("/failed", failed_page),
        Route("/failed/group", group_page),
    ]
