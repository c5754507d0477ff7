"""The consume middleware that opens the CONSUMER span for each delivery."""

from __future__ import annotations

from typing import Any

from pipeline import tracing
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import CallNext


class TracingMiddleware:
    """Continues the trace from the message headers around processing and settling.

    Retry and dead-letter republishes happen inside this span, so they are its
    children and the next hop continues the same trace. The span records the
    outcome (``pipeline.outcome``) and, if processing failed, the error.
    """

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        message = delivery.message
        attributes: dict[str, Any] = {"pipeline.retry.count": delivery.retry_count}
        if message.delivery_tag is not None:
            attributes["messaging.rabbitmq.message.delivery_tag"] = message.delivery_tag
        with tracing.process_span(
            message.headers, delivery.queue, delivery.origin_routing_key,
            message.message_id, delivery.consumer, attributes,
        ) as span:
            outcome = await call_next(delivery)
            span.set_attribute("pipeline.outcome", outcome.value)
            if delivery.error is not None:
                tracing.mark_error(span, delivery.error)
            return outcome
