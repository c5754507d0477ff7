"""Logging for the processes we ship: one line per event, with trace ids."""

from __future__ import annotations

import logging
import sys

from pipeline import tracing
from pipeline.consume.redaction import Redactor

# A log line's message and its traceback are each capped at this many bytes.
LOG_TEXT_BYTES = 16_384

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


class RedactionFilter(logging.Filter):
    """Runs every message and traceback through the redaction step before it is written.

    Exception text often quotes credentials (a connection URL, a bearer token);
    log lines leave the process like failure headers do (``redaction.py``).
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: let the handler report it as usual
            return True
        record.msg, record.args = self._redact(message, LOG_TEXT_BYTES), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text, LOG_TEXT_BYTES)
        return True


def configure_logging(level: str = "INFO", redact: Redactor | None = None) -> None:
    """Log to stderr with trace ids, redacted; called once by entry points, never on import.

    ``redact`` is the deployment's (``redactor_for(settings)``); the built-in
    patterns apply without it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(TraceContextFilter())
    handler.addFilter(RedactionFilter(redact or Redactor()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiormq and aio-pika log every failed connect and reconnect attempt at
    # length; our own lines say the same once, with what to do about it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    # httpx logs every management API request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
