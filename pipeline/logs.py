"""Logging for the processes we ship: one line per event, with trace ids."""

from __future__ import annotations

import logging
import sys

from pipeline import tracing

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"
)


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span (or ``-``) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = tracing.current_ids()
        record.trace_id, record.span_id = ids if ids else ("-", "-")
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with trace ids; called once by entry points, never on import."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiormq and aio-pika log every failed connect and reconnect attempt at
    # length; our own lines say the same once, with what to do about it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    # httpx logs every management API request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
