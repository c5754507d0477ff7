"""Serving the console with uvicorn (``pipeline console``).

SIGTERM or SIGINT stops it gracefully: running actions get a few seconds to
end (``ActionRunner.stop``) and the process exits 0, like our workers (a
second signal stops it at once).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from pipeline.console.app import create_app
from pipeline.console.settings import ConsoleSettings
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn raises the signal again after its graceful shutdown, so the
        # process would die of it (exit -15); a stop we handled is a clean exit.
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(settings: PipelineSettings, console: ConsoleSettings) -> None:
    """Serve until SIGINT/SIGTERM; raises ``ConfigurationError`` for a wrong app or URL."""
    app = create_app(settings, console)
    if not console.secure_cookies:
        log.warning("PIPELINE_CONSOLE_SECURE_COOKIES=false: session cookies also travel over "
                    "plain http; use it only on a trusted network")
    # log_config=None keeps our logging setup; uvicorn's access log names paths only.
    config = uvicorn.Config(app, host=console.host, port=console.port, log_config=None,
                            proxy_headers=False, server_header=False)
    _Server(config).run()
