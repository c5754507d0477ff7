"""The consume middleware that opens the CONSUMER span for each delivery."""

from __future__ import annotations

from pipeline import tracing
from pipeline.delivery import Delivery, Outcome
from pipeline.middleware import CallNext


class TracingMiddleware:
    """Continues the trace from the message headers around processing and settling.

    Retry and dead-letter republishes happen inside this span, so they are its
    children and the next hop continues the same trace.
    """

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        message = delivery.message
        with tracing.process_span(
            message.headers, delivery.queue, delivery.origin_routing_key,
            message.message_id, delivery.consumer,
        ) as span:
            outcome = await call_next(delivery)
            span.set_attribute("pipeline.outcome", outcome.value)
            if delivery.error is not None:
                tracing.mark_error(span, delivery.error)
            return outcome
