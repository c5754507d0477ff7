"""What a handler asks for besides its event, read once from its signature.

    async def handle(event: OrderPlaced) -> None                       # the event only
    async def handle(event: OrderPlaced, context: Context) -> None     # + the message context
    async def handle(event: OrderPlaced, ctx: Context[Resources])      # + typed App state
    async def handle(event: OrderPlaced, session: AsyncSession)        # + the inbox transaction

The first parameter is the event (its annotation picks the model). Every
other parameter is injected by its annotation, or must have a default.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.consume.context import Context
from pipeline.errors import ConfigurationError


@dataclass(frozen=True)
class Injection:
    """Which keyword arguments a handler gets besides its event."""

    context: str | None = None  # the parameter that receives the Context
    state_type: Any = None  # T of Context[T]; checked against the App's state at startup
    session: str | None = None  # the parameter that receives the inbox's AsyncSession
    # True for ``async def handle(event)``: the fast path, nothing to build.
    # A field, not a property: it is read on every delivery.
    is_plain: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_plain", self.context is None and self.session is None)


PLAIN = Injection()


def injection_for(fn: Callable[..., Any]) -> Injection:
    """Read ``fn``'s parameters after the first.

    Raises ``ConfigurationError`` for a parameter it cannot fill.
    """
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    hints = typing.get_type_hints(fn)
    context: str | None = None
    state_type: Any = None
    session: str | None = None
    for parameter in parameters:
        hint = hints.get(parameter.name)
        if _is_async_session(hint):
            session = parameter.name
            continue
        if hint is Context or typing.get_origin(hint) is Context:
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                raise ConfigurationError(
                    f"handler {fn.__qualname__}: {parameter.name!r} is passed by keyword, so "
                    "it must not be positional-only")
            if context is not None:
                raise ConfigurationError(
                    f"handler {fn.__qualname__} asks for the Context twice "
                    f"({context!r} and {parameter.name!r})")
            context = parameter.name
            arguments = typing.get_args(hint)
            state_type = arguments[0] if arguments else None
            continue
        if parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD
        ):
            raise ConfigurationError(
                f"handler {fn.__qualname__} has a parameter {parameter.name!r} the pipeline "
                "cannot fill: annotate it with pipeline.Context (the message context), "
                "AsyncSession (an idempotent consumer's transaction) or give it a default"
            )
    return Injection(context, state_type, session)


def _is_async_session(hint: Any) -> bool:
    """SQLAlchemy's AsyncSession or a subclass; never imports SQLAlchemy for other hints."""
    if not isinstance(hint, type):
        return False
    if not any(base.__module__.startswith("sqlalchemy.") for base in hint.__mro__):
        return False
    from sqlalchemy.ext.asyncio import AsyncSession

    return issubclass(hint, AsyncSession)
