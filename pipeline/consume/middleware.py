"""Compose consume middlewares (``pipeline.consume.protocols.ConsumeMiddleware``) into one call."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from pipeline.consume.protocols import CallNext, ConsumeMiddleware


def chain(middlewares: Sequence[ConsumeMiddleware], innermost: CallNext) -> CallNext:
    """Compose middlewares so the first one listed runs outermost."""
    handler = innermost
    for middleware in reversed(middlewares):
        handler = partial(middleware, call_next=handler)
    return handler
