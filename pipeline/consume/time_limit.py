"""A handler's time limit: ``Consumer(timeout=...)`` (docs/flow-control.md).

The handler runs as a task of its own; past the limit it is cancelled and
``HandlerTimeout`` is raised in its place, so the failure policy moves the
message to the next rung like any transient failure. A handler that swallows
the cancellation cannot be stopped from outside: after ``CANCEL_GRACE_S`` it
is reported (ERROR, with the event id) and abandoned, the delivery is settled
anyway, and the worker's shutdown does not wait for it (``run_to_end``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from pipeline.errors import ConfigurationError, HandlerTimeout
from topology import parse_duration

log = logging.getLogger(__name__)

# How long a cancelled handler may take to unwind (finally blocks, rollbacks).
CANCEL_GRACE_S = 1.0
# At process exit, how long leftover tasks get after their cancellation.
EXIT_GRACE_S = 2.0

T = TypeVar("T")


def timeout_seconds(timeout: timedelta | float | str | None) -> float | None:
    """``Consumer(timeout=...)`` as seconds: a timedelta, seconds, or ``"30s"``/``"2m"``."""
    if timeout is None:
        return None
    if isinstance(timeout, str):
        try:
            timeout = parse_duration(timeout)
        except ValueError as exc:
            raise ConfigurationError(f"timeout: {exc}") from None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise ConfigurationError(f"timeout must be above 0, not {timeout!r}")
    return seconds


class TimeLimit:
    """Runs handlers for one consumer within ``limit_s``; remembers the ones it abandoned."""

    def __init__(self, consumer: str, limit_s: float) -> None:
        self.consumer = consumer
        self.limit_s = limit_s
        self.abandoned: set[asyncio.Task[Any]] = set()

    async def run(self, handler: Awaitable[None], event_id: str | None, what: str) -> None:
        """Await ``handler``; past the limit cancel it and raise ``HandlerTimeout``."""
        task = asyncio.ensure_future(handler)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.limit_s)
        except asyncio.CancelledError:  # the worker itself is being cancelled
            task.cancel()
            raise
        if done:
            task.result()  # the handler's own exception, or None
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
        if not done:
            self.abandoned.add(task)
            task.add_done_callback(self.abandoned.discard)
            log.error(
                "handler %s of %s ignored its cancellation after its time limit of %.3gs on "
                "event %s: abandoned (it may still run; the event moves on as timed out). "
                "Fix the handler: it must not catch CancelledError", what, self.consumer,
                self.limit_s, event_id)
        else:
            with contextlib.suppress(BaseException):
                task.result()  # retrieve it: no "exception never retrieved" warning
        raise HandlerTimeout(f"{what} ran past its time limit of {self.limit_s:.3g}s")


def run_to_end(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` that does not hang on a task that ignores cancellation at exit.

    ``asyncio.run`` cancels every task left and waits for all of them; a
    handler abandoned by its time limit may never end. Here leftovers get
    ``EXIT_GRACE_S``, then the loop is closed without them (logged).
    """
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(main)
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, stuck = loop.run_until_complete(asyncio.wait(leftovers, timeout=EXIT_GRACE_S))
            for task in stuck:
                log.error("task %s ignored its cancellation at exit; exiting without it",
                          task.get_coro())
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        asyncio.set_event_loop(None)
        loop.close()
