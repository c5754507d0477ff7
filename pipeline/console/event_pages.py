"""One event's page, and search by id, type, subject and time range."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pipeline.console.answer import answer
from pipeline.console.groups import first_line
from pipeline.console.guard import page
from pipeline.console.rendering import pretty
from pipeline.console.session import Session
from pipeline.console.state import ConsoleState
from pipeline.ledger.model import TERMINAL
from pipeline.ledger.query import EventFilter
from pipeline.store import Selection

# CloudEvents attributes, in the order the spec lists them.
ATTRIBUTES = ("id", "source", "specversion", "type", "datacontenttype", "dataschema",
              "subject", "time")


def cloud_event(body: object) -> tuple[dict[str, object], object]:
    """(CloudEvents attributes and extensions, data) of a stored body; bodies that are no
    CloudEvent give no attributes and themselves as data."""
    if not isinstance(body, dict) or "specversion" not in body:
        return {}, body
    attributes = {k: body[k] for k in ATTRIBUTES if k in body}
    attributes.update({k: v for k, v in body.items()
                       if k not in attributes and k not in ("data", "data_base64")})
    return attributes, body.get("data", body.get("data_base64"))


def trace_url(state: ConsoleState, trace_id: str | None) -> str | None:
    base = state.console.jaeger_url
    return f"{base.rstrip('/')}/trace/{trace_id}" if base and trace_id else None


@page
async def event_page(request: Request, state: ConsoleState, session: Session) -> Response:
    event_id = request.path_params["event_id"]
    status, ledger_note = await state.ledger.status(event_id)
    found, store_error = await answer(
        state.gate.read(session.acting, Selection(ids=frozenset({event_id}))), session.user)
    copies = []
    for stored in (found[0] if found else []):
        full = stored.as_dict(full=True)  # what `pipeline dead-letters show --json` prints
        attributes, data = cloud_event(full["body"])
        body, cut = pretty(data, state.console.body_bytes)
        headers, _ = pretty(full["headers"], 1 << 20)
        copies.append({"stored": stored, "attributes": attributes, "body": body, "cut": cut,
                       "headers": headers})
    trace_id = status.trace_id if status else next(
        (s.trace_id for s in (found[0] if found else []) if s.trace_id), None)
    cancellable = sorted(n for n, c in status.consumers.items()
                         if c.state not in TERMINAL) if status else []
    return state.templates.TemplateResponse(request, "event.html", {
        "event_id": event_id, "status": status, "ledger_note": ledger_note, "copies": copies,
        "store_error": store_error, "trace_id": trace_id, "trace_url": trace_url(state, trace_id),
        "cancellable": cancellable, "limit": state.console.body_bytes, "first_line": first_line})


def _time(text: str | None) -> datetime | None:
    """A ``datetime-local`` field (read as UTC) or an ISO time; None when empty."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@page
async def search_page(request: Request, state: ConsoleState, session: Session) -> Response:
    params = request.query_params
    event_id = params.get("id", "").strip()
    if event_id:
        return RedirectResponse(f"/events/{quote(event_id, safe='')}", status_code=303)
    form = {k: params.get(k, "").strip() for k in ("type", "subject", "since", "until")}
    results, note, error = None, None, None
    if any(form.values()):
        try:
            where = EventFilter(type=form["type"] or None, subject=form["subject"] or None,
                                since=_time(form["since"]), until=_time(form["until"]),
                                limit=state.console.rows)
        except ValueError:
            error = "write times as YYYY-MM-DDTHH:MM (UTC)"
        else:
            results, note = await state.ledger.search(where)
    return state.templates.TemplateResponse(request, "search.html", {
        "form": form, "results": results, "note": note, "error": error})


def routes() -> list[Route]:
    return [
        Route("/events/{event_id:path}", event_page),
        Route("/search", search_page),
    ]
