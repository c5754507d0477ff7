"""Declaring a consumer: its name, binding patterns, prefetch and typed handlers.

    billing = Consumer("billing", patterns=["orders.#"], prefetch=10, timeout="30s")

    @billing.handler
    async def charge(event: OrderPlaced) -> None: ...

    @billing.handler                        # the message context, on request
    async def refund(event: OrderCancelled, context: Context) -> None: ...

Declaring does no I/O; ``pipeline.consume.worker`` runs it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from pipeline.consume.injection import PLAIN, Injection, injection_for
from pipeline.consume.rate import rate_per_second
from pipeline.consume.retry import DEFAULT_POLICY, RetryPolicy
from pipeline.consume.time_limit import timeout_seconds
from pipeline.errors import ConfigurationError
from pipeline.events import Event
from topology import Subscription, naming

if typing.TYPE_CHECKING:
    from pipeline.consume.protocols import ConsumeMiddleware
    from pipeline.inbox import Inbox

# The event first; other parameters are injected by annotation (injection.py).
AnyHandler = Callable[..., Awaitable[None]]
H = TypeVar("H", bound=AnyHandler)

# AMQP topic patterns: words separated by dots, '*' one word, '#' zero or more.
_PATTERN_WORD = typing.cast(Callable[[str], bool], lambda w: w in {"*", "#"} or (
    w != "" and all(c.isalnum() or c in "-_" for c in w)
))


@dataclass(frozen=True)
class Route:
    """Which model an event type is read as, and which handler receives it."""

    event_type: str
    model: type[Event]
    handler: AnyHandler
    injection: Injection = PLAIN

    @property
    def handler_name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


def _validate_pattern(pattern: str) -> str:
    if not pattern or not all(_PATTERN_WORD(word) for word in pattern.split(".")):
        raise ConfigurationError(
            f"binding pattern {pattern!r} is not an AMQP topic pattern: use dot-separated "
            "words, '*' for one word and '#' for any number (for example 'orders.#')"
        )
    return pattern


class Consumer:
    """A named consumer: one durable queue, its bindings and its handlers."""

    def __init__(
        self,
        name: str,
        patterns: Sequence[str],
        prefetch: int | None = None,
        *,
        retry: RetryPolicy | None = None,
        middlewares: Sequence[ConsumeMiddleware] = (),
        inbox: Inbox | None = None,
        timeout: timedelta | float | str | None = None,
        rate: str | float | None = None,
    ) -> None:
        try:
            self.name = naming.validate_consumer_name(name)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if isinstance(patterns, str):
            raise ConfigurationError("patterns must be a list of strings, not one string")
        self.patterns = tuple(_validate_pattern(p) for p in patterns)
        if prefetch is not None and prefetch < 1:
            raise ConfigurationError(f"prefetch for {name!r} must be at least 1")
        self.prefetch = prefetch
        # Its own ladder, never-retried exceptions, attempts (failure.py applies them).
        self.retry = retry or DEFAULT_POLICY
        # Wrap this consumer's deliveries only, inside the App's middlewares.
        self.middlewares = tuple(middlewares)
        # Idempotent: each event id's handler effects once (pipeline.inbox).
        self.inbox = inbox
        # A handler running longer is cancelled and its message retried (time_limit.py).
        self.timeout_s = timeout_seconds(timeout)
        # At most this many handlers start per second in each process (rate.py).
        self.rate_per_s = rate_per_second(rate)
        self._routes: dict[str, Route] = {}

    @property
    def queue(self) -> str:
        return naming.consumer_queue(self.name)

    @property
    def express_queue(self) -> str:
        return naming.express_queue(self.name)

    @property
    def subscription(self) -> Subscription:
        """What the topology declares for it: bindings, and its rungs if it has its own."""
        return Subscription(self.name, self.patterns, self.retry.own_ladder,
                            self.retry.max_retries)

    @property
    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

    def route_for(self, event_type: str) -> Route | None:
        return self._routes.get(event_type)

    def handler(self, fn: H) -> H:
        """Register ``fn`` for the event model named by its first parameter's annotation.

        Other parameters are filled by annotation (``context: Context``);
        raises ``ConfigurationError`` for a parameter that cannot be filled.
        """
        # Checked through a plain callable: the TypeGuard would narrow ``fn``
        # away from H, the exact type the decorator hands back.
        function: Callable[..., Any] = fn
        if not inspect.iscoroutinefunction(function):
            raise ConfigurationError(f"handler {fn.__qualname__} must be an `async def`")
        model = _event_model_of(fn)
        if model.event_type in self._routes:
            raise ConfigurationError(
                f"consumer {self.name!r} already has a handler for {model.event_type!r}"
            )
        injection = injection_for(fn)
        if injection.session is not None and self.inbox is None:
            raise ConfigurationError(
                f"handler {fn.__qualname__} asks for a session, but consumer {self.name!r} "
                "has no inbox: Consumer(..., inbox=Inbox(sessions)) makes it idempotent and "
                "gives its handlers the transaction"
            )
        self._routes[model.event_type] = Route(model.event_type, model, fn, injection)
        return fn


def _event_model_of(fn: Callable[..., Any]) -> type[Event]:
    params = list(inspect.signature(fn).parameters)
    hints = typing.get_type_hints(fn)
    model = hints.get(params[0]) if params else None
    if not (isinstance(model, type) and issubclass(model, Event)):
        raise ConfigurationError(
            f"handler {fn.__qualname__} must take one argument annotated with an Event "
            "subclass, e.g. `async def handle(event: OrderPlaced) -> None`"
        )
    return model
