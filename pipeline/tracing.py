"""OpenTelemetry spans and W3C context propagation over AMQP headers.

The library uses the OpenTelemetry API only: without an SDK every span is a
non-recording one that still carries the incoming context, so a process with
tracing off passes the trace on unchanged. Processes we ship install the SDK
(``pipeline.telemetry``). Names and attributes follow the OpenTelemetry
messaging semantic conventions. See docs/tracing.md for the model:

* publish          PRODUCER  ``publish pipeline.events``
* process          CONSUMER  ``process pipeline.billing`` (child of the publish)
* handler          INTERNAL  ``handle orders.order.placed`` (child of process)
* retry            PRODUCER  ``retry pipeline.billing.retry.1s`` (child of process;
                             the next process span is its child, so the wait shows)
* dead-letter      PRODUCER  ``dead-letter pipeline.dead-letter``
* replay           PRODUCER  a new trace, linked to the dead-lettered one
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

TRACER_NAME = "pipeline"
SYSTEM = "rabbitmq"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP header values, which may arrive as bytes from other clients."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


@functools.cache
def _tracer() -> trace.Tracer:
    # Looked up once, on first use, never at import. Before a provider is
    # installed this is the API's ProxyTracer, which binds to the provider
    # when one is set (only once per process). The SDK's get_tracer costs
    # about as much as a span, so it is not called per span.
    return trace.get_tracer(TRACER_NAME)


# Providers that only ever hand out the API's no-op tracer: no SDK is installed.
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NO_OP_TRACER = trace.NoOpTracer()


class _NonRecordingSpan(AbstractContextManager[Span]):
    """``start_as_current_span`` of the API's no-op tracer, minus its layers.

    With no SDK, a "span" is the parent from ``context`` (or the current one)
    as a non-recording span, made current until the block ends; so the trace
    still passes through. The API gets there through four nested context
    managers and an attribute dict it drops; this is a third of the cost of
    a delivery's tracing when tracing is off (docs/performance.md).
    """

    __slots__ = ("_span", "_token")

    def __init__(self, context: otel_context.Context | None) -> None:
        self._span = _NO_OP_TRACER.start_span("", context)

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)


def _is_sdk_absent() -> bool:
    return isinstance(trace.get_tracer_provider(), _NO_SDK)


_OUTSIDE_ANY_TRACE: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


def _non_recording(context: otel_context.Context | None) -> AbstractContextManager[Span]:
    if context is None:
        current = trace.get_current_span()
        if current is trace.INVALID_SPAN:
            return _OUTSIDE_ANY_TRACE  # reusable: nothing allocated per message
        if isinstance(current, trace.NonRecordingSpan):
            # The no-op tracer would make this very span current again.
            return nullcontext(current)
    return _NonRecordingSpan(context)


def inject(headers: MutableMapping[str, Any]) -> None:
    """Write the current trace context (traceparent, tracestate, baggage) into headers.

    When there is no current trace, headers copied from an earlier hop are
    left as they are. When there is one, a stale ``tracestate`` copied from
    another trace is dropped so it never rides along a new ``traceparent``.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if TRACEPARENT in carrier:
        headers.pop(TRACESTATE, None)
    headers.update(carrier)


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """The context carried by message headers; an empty one (a new trace) if none."""
    return propagate.extract(headers or {}, getter=_GETTER)


def _attributes(
    operation: str, destination: str, routing_key: str, message_id: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
    }
    if routing_key:  # semconv: conditionally required "if not empty"
        attributes["messaging.rabbitmq.destination.routing_key"] = routing_key
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def publish_span(
    name: str,
    destination: str,
    routing_key: str,
    message_id: str | None,
    attributes: Mapping[str, Any] | None = None,
    links: list[Link] | None = None,
    new_trace: bool = False,
    exchange: str | None = None,
) -> AbstractContextManager[Span]:
    """A PRODUCER span around one confirmed publish (publish, retry, dead-letter, replay).

    The span is named ``{name} {destination}``. ``exchange`` is the exchange
    actually published to when it differs from ``destination`` (a rung is
    reached through the default exchange, ``""``, which the semantic
    conventions record as the destination name). ``new_trace`` starts a new
    trace instead of continuing the current one (replay), usually with
    ``links`` to the old one. Raises nothing of its own.
    """
    context = otel_context.Context() if new_trace else None
    if _is_sdk_absent():
        return _non_recording(context)
    attrs = _attributes(
        "send", destination if exchange is None else exchange, routing_key, message_id
    )
    attrs["messaging.operation.name"] = name
    if attributes:
        attrs.update(attributes)
    return _tracer().start_as_current_span(
        f"{name} {destination}",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes=attrs,
        links=links,
    )


def process_span(
    headers: Mapping[str, Any] | None,
    queue: str,
    routing_key: str,
    message_id: str | None,
    consumer: str,
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[Span]:
    """A CONSUMER span for one delivery, continuing the trace found in its headers.

    Without a trace context in the headers it starts a new trace. Exceptions
    are left to the caller to record (``mark_error``): the failure policy
    settles them inside this span.
    """
    context = extract(headers)
    if _is_sdk_absent():
        return _NonRecordingSpan(context)
    attrs = _attributes("process", queue, routing_key, message_id)
    attrs["messaging.operation.name"] = "process"
    attrs["messaging.consumer.group.name"] = consumer
    if attributes:
        attrs.update(attributes)
    return _tracer().start_as_current_span(
        f"process {queue}",
        context=context,
        kind=SpanKind.CONSUMER,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    )


def handler_span(event_type: str, handler_name: str) -> AbstractContextManager[Span]:
    """An INTERNAL span around the user's handler; its exception is recorded here."""
    if _is_sdk_absent():
        return _non_recording(None)
    return _tracer().start_as_current_span(
        f"handle {event_type}",
        kind=SpanKind.INTERNAL,
        attributes={"code.function.name": handler_name, "cloudevents.event_type": event_type},
    )


def mark_error(span: Span, exc: BaseException) -> None:
    """Record that the operation in ``span`` failed with ``exc`` (``error.type`` + status)."""
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


def link_to(headers: Mapping[str, Any] | None) -> list[Link]:
    """A link to the trace recorded in ``headers`` (used when replay starts a new trace)."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def current_ids() -> tuple[str, str] | None:
    """The current (trace_id, span_id) as hex, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def trace_id_of(headers: Mapping[str, Any] | None) -> str | None:
    """The trace id carried by a message's headers, for notices and listings."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
