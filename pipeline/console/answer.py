"""A page's broker reads, turned into (answer, one sentence) so a page never shows a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiormq.exceptions import AMQPError

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

T = TypeVar("T")


async def answer(read: Awaitable[T], user: str) -> tuple[T | None, str | None]:
    """``read``'s result, or None and a sentence saying why it could not be had.

    The broker's refusals (a user without read permission on the store) and
    the pipeline's errors become that sentence; anything else is a bug,
    logged with its traceback and shown as one line.
    """
    try:
        return await read, None
    except PipelineError as exc:
        return None, str(exc)
    except AMQPError as exc:
        if "ACCESS_REFUSED" in str(exc):
            return None, f"the broker refused this to {user!r}: {exc}"
        return None, f"the broker closed the channel: {exc}"
    except Exception:
        log.exception("console: a page's read failed")
        return None, "unexpected error; see the console's log"
