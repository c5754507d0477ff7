"""Templates and the filters they use: times, durations, and bodies as capped pretty JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from pipeline.durations import format_duration


def when(value: datetime | None) -> str:
    """``2026-11-30 20:41:07 UTC``; ``-`` for no time."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None) -> str:
    if value is None:
        return "-"
    return format_duration(max(0.0, (datetime.now(UTC) - value).total_seconds())) + " ago"


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def pretty(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` as indented JSON, cut at ``limit`` characters; (text, was it cut)."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def per_minute(value: int | None) -> str:
    return "?" if value is None else str(value)


def templates(context: dict[str, Any]) -> Jinja2Templates:
    """The console's templates (autoescaped) with its filters and ``context`` in every page."""
    env = Environment(loader=PackageLoader("pipeline.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(when=when, ago=ago, duration=duration, per_minute=per_minute)
    env.globals.update(context)

    def session_context(request: Request) -> dict[str, Any]:
        session = getattr(request.state, "session", None)
        return {"session": session, "csrf": session.csrf if session else ""}

    return Jinja2Templates(env=env, context_processors=[session_context])
