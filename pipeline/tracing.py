"""OpenTelemetry spans and W3C context propagation over AMQP headers.

The library uses the OpenTelemetry API only: without an SDK configured every
span is a no-op and costs close to nothing. Processes we ship install the SDK
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

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

TRACER_NAME = "pipeline"
SYSTEM = "rabbitmq"


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


def _tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(headers: MutableMapping[str, Any]) -> None:
    """Write the current trace context (traceparent, tracestate, baggage) into headers.

    When no span is recording, headers copied from an earlier hop are left as
    they are, so the trace survives a process that has tracing off.
    """
    propagate.inject(headers)


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context:
    return propagate.extract(headers or {}, getter=_GETTER)


def _attributes(
    operation: str, destination: str, routing_key: str, message_id: str | None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


@contextmanager
def publish_span(
    name: str,
    destination: str,
    routing_key: str,
    message_id: str | None,
    attributes: Mapping[str, Any] | None = None,
    links: list[Link] | None = None,
    new_trace: bool = False,
) -> Iterator[Span]:
    """A PRODUCER span around one confirmed publish (publish, retry, dead-letter, replay)."""
    attrs = _attributes("send", destination, routing_key, message_id)
    attrs["messaging.operation.name"] = name
    if attributes:
        attrs.update(attributes)
    context = otel_context.Context() if new_trace else None
    with _tracer().start_as_current_span(
        f"{name} {destination}",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes=attrs,
        links=links,
    ) as span:
        yield span


@contextmanager
def process_span(
    headers: Mapping[str, Any] | None,
    queue: str,
    routing_key: str,
    message_id: str | None,
    consumer: str,
) -> Iterator[Span]:
    """A CONSUMER span for one delivery, continuing the trace found in its headers."""
    attrs = _attributes("process", queue, routing_key, message_id)
    attrs["messaging.operation.name"] = "process"
    attrs["messaging.consumer.group.name"] = consumer
    with _tracer().start_as_current_span(
        f"process {queue}",
        context=extract(headers),
        kind=SpanKind.CONSUMER,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


@contextmanager
def handler_span(event_type: str, handler_name: str) -> Iterator[Span]:
    """An INTERNAL span around the user's handler; its exception is recorded here."""
    with _tracer().start_as_current_span(
        f"handle {event_type}",
        kind=SpanKind.INTERNAL,
        attributes={"code.function.name": handler_name, "cloudevents.event_type": event_type},
    ) as span:
        yield span


def mark_error(span: Span, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


def link_to(headers: Mapping[str, Any] | None) -> list[Link]:
    """A link to the trace recorded in ``headers`` (used when replay starts a new trace)."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def current_ids() -> tuple[str, str] | None:
    """The current (trace_id, span_id) as hex, or None outside a recording span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def trace_id_of(headers: Mapping[str, Any] | None) -> str | None:
    """The trace id carried by a message's headers, for notices and listings."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
