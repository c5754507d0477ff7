"""Serving the console with uvicorn (``pipeline console``)."""

from __future__ import annotations

import logging

import uvicorn

from pipeline.console.app import create_app
from pipeline.console.settings import ConsoleSettings
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


def serve(settings: PipelineSettings, console: ConsoleSettings) -> None:
    """Serve until SIGINT/SIGTERM; raises ``ConfigurationError`` for a wrong app or URL."""
    app = create_app(settings, console)
    if not console.secure_cookies:
        log.warning("PIPELINE_CONSOLE_SECURE_COOKIES=false: session cookies also travel over "
                    "plain http; use it only on a trusted network")
    # log_config=None keeps our logging setup; uvicorn's access log names paths only.
    uvicorn.run(app, host=console.host, port=console.port, log_config=None,
                proxy_headers=False, server_header=False)
