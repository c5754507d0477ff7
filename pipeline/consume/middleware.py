"""The consume middleware contract: wrap the handling of one delivery.

A middleware is any callable ``async (delivery, call_next) -> Outcome``. The
chain is built once per worker; the innermost step processes the message and
settles it (ack, retry or dead-letter), so a middleware sees the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from pipeline.consume.delivery import Delivery, Outcome

CallNext = Callable[[Delivery], Awaitable[Outcome]]


class ConsumeMiddleware(Protocol):
    """Wraps the processing of each delivery; must call ``call_next`` exactly once."""

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome: ...


def chain(middlewares: Sequence[ConsumeMiddleware], innermost: CallNext) -> CallNext:
    """Compose middlewares so the first one listed runs outermost."""
    handler = innermost
    for middleware in reversed(middlewares):
        handler = partial(middleware, call_next=handler)
    return handler
