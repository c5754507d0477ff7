"""``create_app``: the console as an ASGI application (Starlette), wired from settings.

    app = create_app(PipelineSettings(), ConsoleSettings())   # uvicorn serves it

The composition root of the console: sessions, the audit log, the store
gate, the action runner, the ledger view and the flow-control seam. Nothing
connects until a user logs in; the audit table is created on start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.console import actions, audit_pages, event_pages, login, pages
from pipeline.console.audit import AuditLog
from pipeline.console.flow import ControlLogFlow
from pipeline.console.ledger_view import LedgerView
from pipeline.console.overview import load_topology
from pipeline.console.protocols import FlowControl
from pipeline.console.rendering import templates
from pipeline.console.runner import ActionRunner
from pipeline.console.session import SessionStore
from pipeline.console.settings import ConsoleSettings
from pipeline.console.state import ConsoleState
from pipeline.console.store_gate import StoreGate
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

# Scripts and styles from this console only; no frames, no referrers to other sites.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: PipelineSettings, console: ConsoleSettings,
               flow: FlowControl | None = None) -> Starlette:
    """The console for the pipeline of ``settings`` (``PIPELINE_APP`` names its consumers).

    ``flow`` is the pause/resume seam (default: ``ControlLogFlow``, the control log). Raises
    ``ConfigurationError`` when ``PIPELINE_APP`` or a database URL is wrong.
    """
    audit_log = AuditLog(console.audit_url)
    gate = StoreGate()
    topology = load_topology(settings)
    flow = flow or ControlLogFlow(q.consumer for q in topology.queues
                                  if q.role == "consumer" and q.consumer is not None)
    state = ConsoleState(
        settings=settings, console=console, topology=topology,
        sessions=SessionStore(console.session_idle_s, console.session_max_s),
        audit=audit_log, gate=gate, runner=ActionRunner(audit_log, gate, flow),
        ledger=LedgerView(settings), flow=flow,
        templates=templates({"vhost": settings.vhost, "jaeger_url": console.jaeger_url}),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        audit_log.create()
        log.info("console for vhost %r on %s; audit in %s", settings.vhost,
                 settings.broker_address, audit_log.engine.url)
        try:
            yield
        finally:
            await state.runner.stop()
            state.ledger.close()
            audit_log.close()

    routes = [*login.routes(), *pages.routes(), *event_pages.routes(), *audit_pages.routes(),
              *actions.routes(),
              Mount("/static", StaticFiles(packages=[("pipeline.console", "static")]),
                    name="static")]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = state
    app.add_middleware(SecurityHeaders)
    return app
