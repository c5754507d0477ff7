"""Turn a delivery into a typed event and call its handler.

Everything that can go wrong here raises; the worker hands the exception to
the failure policy. Validation happens once: bytes -> envelope -> model.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pipeline import envelope, tracing
from pipeline.consume.consumer import Consumer, Route
from pipeline.consume.context import Context
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.runtime import AppRuntime
from pipeline.consume.time_limit import TimeLimit
from pipeline.errors import UnknownEventTypeError
from pipeline.events import Event
from topology import RetryLadder

if TYPE_CHECKING:
    from pipeline.inbox import Inbox

log = logging.getLogger(__name__)


class EventDispatcher:
    """Decodes CloudEvents for one consumer and runs the matching handler.

    ``runtime`` (the App's) gives handlers that ask for a ``Context`` its
    state and publisher; ``ladder`` (the consumer's) names the rung a retry
    came back from.
    """

    def __init__(
        self,
        consumer: Consumer,
        traced: bool = True,
        runtime: AppRuntime | None = None,
        ladder: RetryLadder | None = None,
    ) -> None:
        self._consumer = consumer
        # Open a handler span: only when an SDK records spans
        # (``tracing.is_enabled``) and ``PIPELINE_TRACE_HANDLER_SPAN`` asks for it.
        self._traced = traced
        self._runtime = runtime
        self._ladder = ladder
        self._inbox = consumer.inbox
        # Route.handler_name is computed on each access; a route never changes.
        self._handler_names: dict[str, str] = {}
        limit_s = consumer.timeout_s
        self._limit = TimeLimit(consumer.name, limit_s) if limit_s is not None else None

    def __call__(self, delivery: Delivery) -> Awaitable[None]:
        """Decode and route ``delivery``; the awaitable runs the handler within its time limit.

        Raises as ``_start`` does; past ``Consumer(timeout=...)`` the awaitable
        raises ``HandlerTimeout`` (time_limit.py).
        """
        work = self._start(delivery)
        if self._limit is None or delivery.envelope is None:
            return work
        return self._limit.run(work, delivery.envelope.id, self._name_of(delivery.envelope.type))

    def _name_of(self, event_type: str) -> str:
        name = self._handler_names.get(event_type)
        if name is None:
            route = self._consumer.route_for(event_type)
            name = route.handler_name if route is not None else event_type
            self._handler_names[event_type] = name
        return name

    def _start(self, delivery: Delivery) -> Awaitable[None]:
        """Decode and route ``delivery``; the awaitable it returns runs the handler.

        Raises ``InvalidMessageError`` or ``UnknownEventTypeError`` on the call
        itself; the awaitable raises whatever the handler raises. Untraced,
        the awaitable is the handler's own coroutine: no layer of ours
        around it (every await layer is paid on every delivery).
        """
        cloud_event = envelope.decode(delivery.message.body)
        delivery.envelope = cloud_event
        route = self._consumer.route_for(cloud_event.type)
        if route is None:
            known = ", ".join(sorted(self._consumer.routes)) or "(none)"
            raise UnknownEventTypeError(
                f"consumer {self._consumer.name!r} has no handler for event type "
                f"{cloud_event.type!r} (it handles: {known}); check its binding patterns"
            )
        event = envelope.read_data(cloud_event, route.model)
        injection = route.injection
        if self._inbox is not None:
            return self._idempotent(self._inbox, delivery, cloud_event.id, route, event,
                                    self._injected(delivery, route))
        if injection.is_plain:
            if not self._traced:
                return route.handler(event)
            return self._traced_handler(route, event, {})
        kwargs = self._injected(delivery, route)
        if not self._traced:
            return route.handler(event, **kwargs)
        return self._traced_handler(route, event, kwargs)

    def _injected(self, delivery: Delivery, route: Route) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        context = route.injection.context
        if context is not None and delivery.envelope is not None:
            kwargs[context] = Context(
                delivery, delivery.envelope, self._runtime, self._rung_of(delivery))
        return kwargs

    async def _idempotent(
        self,
        inbox: Inbox,
        delivery: Delivery,
        event_id: str,
        route: Route,
        event: Event,
        kwargs: dict[str, Any],
    ) -> None:
        """The handler inside the inbox's transaction, or not at all for a handled id."""
        runtime = self._runtime
        state = runtime.state if runtime is not None and runtime.is_running else None
        async with inbox.handling(delivery.consumer, event_id, state) as session:
            if session is None:
                delivery.ack_outcome = Outcome.DUPLICATE
                log.info("%s event %s was handled by %s before: acked without running the "
                         "handler (duplicate)", route.event_type, event_id, delivery.consumer)
                return
            if route.injection.session is not None:
                kwargs[route.injection.session] = session
            if self._traced:
                await self._traced_handler(route, event, kwargs)
            else:
                await route.handler(event, **kwargs)

    def _rung_of(self, delivery: Delivery) -> str | None:
        retries = delivery.retry_count
        if not retries or not self._ladder:
            return None
        # A policy with more attempts than rungs repeats the last rung.
        return self._ladder[min(retries, len(self._ladder)) - 1].label

    async def _traced_handler(self, route: Route, event: Event, kwargs: dict[str, Any]) -> None:
        with tracing.handler_span(route.event_type, self._name_of(route.event_type)) as span:
            try:
                await route.handler(event, **kwargs)
            except Exception as exc:
                tracing.mark_error(span, exc)
                raise
