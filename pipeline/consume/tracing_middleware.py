"""The consume middleware that opens the CONSUMER span for each delivery."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from pipeline import tracing
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import CallNext

# Outcome.value is an enum descriptor lookup; a plain str also keeps a StrEnum
# out of exporters that check types strictly.
_OUTCOME_NAMES = {outcome: str(outcome.value) for outcome in Outcome}


class TracingMiddleware:
    """Continues the trace from the message headers around processing and settling.

    Retry and dead-letter republishes happen inside this span, so they are its
    children and the next hop continues the same trace. The span records the
    outcome (``pipeline.outcome``) and, if processing failed, the error; with
    ``record_exception`` (no handler span records it: the default, see
    ``PipelineSettings.trace_handler_span``) also the exception as a span event.
    The per-delivery attributes are built only for a span that records
    (a sampled delivery).
    """

    def __init__(self, record_exception: bool = True) -> None:
        self._record_exception = record_exception

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        with tracing.delivery_span(
            delivery.message.headers, delivery.queue, delivery.consumer
        ) as span:
            outcome: Outcome | None = None
            try:
                outcome = await call_next(delivery)
                return outcome
            finally:
                if span.is_recording():
                    self._describe(span, delivery, outcome)

    def _describe(self, span: Span, delivery: Delivery, outcome: Outcome | None) -> None:
        message = delivery.message
        attributes = tracing.delivery_attributes(
            delivery.origin_routing_key, message.message_id, message.delivery_tag,
            delivery.retry_count,
        )
        if outcome is not None:
            attributes["pipeline.outcome"] = _OUTCOME_NAMES[outcome]
        error = delivery.error
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
            if self._record_exception:
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.set_attributes(attributes)
