"""The audit list, and one action's record (live while it runs)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pipeline.console.answer import answer
from pipeline.console.audit import RUNNING
from pipeline.console.guard import page
from pipeline.console.session import Session
from pipeline.console.state import ConsoleState


@page
async def audit_page(request: Request, state: ConsoleState, session: Session) -> Response:
    records, error = await answer(state.audit.recent(state.console.rows), session.user)
    return state.templates.TemplateResponse(request, "audit.html", {
        "records": records or [], "error": error})


async def _record(request: Request, state: ConsoleState, template: str) -> Response:
    try:
        record_id = int(request.path_params["record_id"])
    except ValueError:
        return PlainTextResponse("no such record", status_code=404)
    record = await state.audit.get(record_id)
    if record is None:
        return PlainTextResponse("no such record", status_code=404)
    return state.templates.TemplateResponse(request, template, {
        "record": record, "running": record.state == RUNNING,
        "progress": state.runner.progress.get(record.id)})


@page
async def record_page(request: Request, state: ConsoleState, session: Session) -> Response:
    return await _record(request, state, "record.html")


@page
async def record_fragment(request: Request, state: ConsoleState, session: Session) -> Response:
    return await _record(request, state, "record_live.html")


def routes() -> list[Route]:
    return [
        Route("/audit", audit_page),
        Route("/audit/{record_id}", record_page),
        Route("/fragments/audit/{record_id}", record_fragment),
    ]
