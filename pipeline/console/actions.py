"""The console's actions: replay (one, a selection, a group, all), purge a group, cancel,
pause and resume. Replay and purge show what they would do first (the CLI's dry run);
each confirmed action is recorded and then runs as the user (``runner.py``)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pipeline.console.answer import answer
from pipeline.console.groups import GroupKey
from pipeline.console.guard import action, client_of
from pipeline.console.runner import Request as Who
from pipeline.console.session import Session
from pipeline.console.state import ConsoleState
from pipeline.store import Selection

SCOPES = ("one", "selection", "group", "all")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def selection_of(form: FormData) -> tuple[str, Selection, str]:
    """(scope, selection, what it is in words) from a replay or purge form.

    Raises ``ValueError`` with a sentence for a form that names nothing.
    """
    scope = _text(form, "scope")
    ids = frozenset(v.strip() for v in form.getlist("ids") if isinstance(v, str) and v.strip())
    consumer = _text(form, "consumer") or None
    if scope == "all":
        return scope, Selection(), "every stored event"
    if scope == "group":
        key = GroupKey(_text(form, "consumer"), _text(form, "type"), _text(form, "error"))
        if not all((key.consumer, key.event_type, key.error_type)):
            raise ValueError("a group needs its consumer, event type and error type")
        return scope, key.selection, f"group {key.label}"
    if scope in ("one", "selection"):
        if not ids:
            raise ValueError("select at least one event")
        # Ids of one consumer's copies: the same event may be stored for another consumer.
        what = (f"event {next(iter(ids))}" if len(ids) == 1 else f"{len(ids)} selected events")
        return scope, Selection(ids=ids, consumer=consumer), what + (
            f" in {consumer}" if consumer else "")
    raise ValueError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")


def rate_of(form: FormData) -> float | None:
    """The ``rate`` field: events per second, empty for no limit; ``ValueError`` otherwise."""
    text = _text(form, "rate")
    if not text:
        return None
    rate = float(text)
    if rate <= 0:
        raise ValueError("the rate must be a positive number of events per second")
    return rate


def _problem(state: ConsoleState, request: Request, message: str) -> Response:
    return state.templates.TemplateResponse(request, "problem.html", {"message": message},
                                            status_code=400)


def _to_record(record_id: int) -> Response:
    return RedirectResponse(f"/audit/{record_id}", status_code=303)


@action
async def replay(request: Request, state: ConsoleState, session: Session,
                 form: FormData) -> Response:
    try:
        scope, selection, what = selection_of(form)
        rate = rate_of(form)
    except ValueError as exc:
        return _problem(state, request, str(exc))
    if _text(form, "step") != "confirm":
        report, error = await answer(state.gate.dry_run(session.acting, selection), session.user)
        return state.templates.TemplateResponse(request, "confirm.html", {
            "verb": "replay", "what": what, "error": error, "form": form, "rate": rate,
            "count": len(report.skipped_dry_run) if report else None,
            "refused": report.failed if report else [], "scope": scope})
    who = Who(session, client_of(request))
    return _to_record(await state.runner.replay(who, what, selection, rate))


@action
async def purge(request: Request, state: ConsoleState, session: Session,
                form: FormData) -> Response:
    try:
        scope, selection, what = selection_of(form)
    except ValueError as exc:
        return _problem(state, request, str(exc))
    if scope != "group":
        return _problem(state, request, "the console purges one group at a time")
    if _text(form, "step") != "confirm":
        found, error = await answer(state.gate.read(session.acting, selection), session.user)
        return state.templates.TemplateResponse(request, "confirm.html", {
            "verb": "purge", "what": what, "count": len(found[0]) if found else None,
            "error": error, "form": form, "rate": None, "refused": [], "scope": scope})
    who = Who(session, client_of(request))
    return _to_record(await state.runner.purge(who, what, selection))


@action
async def cancel(request: Request, state: ConsoleState, session: Session,
                 form: FormData) -> Response:
    event_id = _text(form, "event_id")
    if not event_id:
        return _problem(state, request, "name the event to cancel")
    who = Who(session, client_of(request))
    return _to_record(await state.runner.cancel(who, event_id, _text(form, "consumer") or None))


async def _flow(request: Request, state: ConsoleState, session: Session, form: FormData,
                pause: bool) -> Response:
    consumer = _text(form, "consumer")
    if consumer not in state.consumers:
        return _problem(state, request, f"there is no consumer {consumer!r} in this pipeline")
    who = Who(session, client_of(request))
    return _to_record(await state.runner.set_flow(who, consumer, pause))


@action
async def pause(request: Request, state: ConsoleState, session: Session,
                form: FormData) -> Response:
    return await _flow(request, state, session, form, pause=True)


@action
async def resume(request: Request, state: ConsoleState, session: Session,
                 form: FormData) -> Response:
    return await _flow(request, state, session, form, pause=False)


def routes() -> list[Route]:
    return [Route(f"/actions/{name}", handler, methods=["POST"]) for name, handler in (
        ("replay", replay), ("purge", purge), ("cancel", cancel), ("pause", pause),
        ("resume", resume))]
