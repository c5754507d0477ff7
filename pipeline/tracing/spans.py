"""OpenTelemetry spans and W3C context propagation over AMQP headers.

The library uses the OpenTelemetry API only: without an SDK every span is a
non-recording one that still carries the incoming context, so a process with
tracing off passes the trace on unchanged. Processes we ship install the SDK
(``pipeline.tracing.sdk``). Names and attributes follow the OpenTelemetry
messaging semantic conventions. See docs/tracing.md for the model:

* publish          PRODUCER  ``publish pipeline.events``
* process          CONSUMER  ``process pipeline.billing`` (child of the publish)
* handler          INTERNAL  ``handle orders.order.placed`` (child of process;
                             only with ``PIPELINE_TRACE_HANDLER_SPAN=true``)
* retry            PRODUCER  ``retry pipeline.billing.retry.01.1s`` (child of process;
                             the next process span is its child, so the wait shows)
* dead-letter      PRODUCER  ``dead-letter pipeline.dead-letter``
* replay           PRODUCER  a new trace, linked to the dead-lettered one
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
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
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    # Looked up once per provider (a process installs one), never at import:
    # the SDK's get_tracer costs about as much as a span. The provider's own
    # tracer also skips the API ProxyTracer's indirection on every span.
    return provider.get_tracer(TRACER_NAME)


class _CurrentSpan(AbstractContextManager[Span]):
    """``start_as_current_span``'s block for an already started span, in one object.

    The SDK gets there through two generator-based context managers per span
    (``start_as_current_span`` and ``use_span``); this does the same (make
    the span current, record an escaping ``Exception`` if asked, end the
    span) with a tenth of the calls. Spans are most of tracing's cost per
    delivery (docs/performance.md).
    """

    __slots__ = ("_record", "_span", "_token")

    def __init__(self, span: Span, record_exception: bool) -> None:
        self._span = span
        self._record = record_exception

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        otel_context.detach(self._token)
        span = self._span
        try:
            # As use_span: only Exception (not GeneratorExit and the like) is an error.
            if self._record and isinstance(exc, Exception) and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            span.end()


def _recording_span(
    provider: trace.TracerProvider,
    name: str,
    context: otel_context.Context | None,
    kind: SpanKind,
    attributes: Mapping[str, Any],
    links: list[Link] | None = None,
    record_exception: bool = True,
) -> AbstractContextManager[Span]:
    span = _tracer_of(provider).start_span(
        name, context, kind, attributes, links,
        record_exception=record_exception, set_status_on_exception=record_exception,
    )
    return _CurrentSpan(span, record_exception)


# Providers that only ever hand out the API's no-op tracer: no SDK is installed.
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NO_OP_TRACER = trace.NoOpTracer()


# The headers of the delivery being processed, set by the worker for every
# delivery. With tracing off no process span makes the incoming context
# current (extracting it costs more than a tenth of our per-delivery budget);
# ``inject`` and ``current_ids`` read it from here only when they need it.
_INCOMING: ContextVar[Mapping[str, Any] | None] = ContextVar("pipeline_incoming", default=None)


def carry(headers: Mapping[str, Any] | None) -> Token[Mapping[str, Any] | None]:
    """Note the headers of the delivery now being processed (pass the token to ``release``).

    When no span is current, ``inject`` and ``current_ids`` continue the trace
    these headers carry, so a process with tracing off passes it on.
    """
    return _INCOMING.set(headers)


def release(token: Token[Mapping[str, Any] | None]) -> None:
    """Forget the headers noted by ``carry``."""
    _INCOMING.reset(token)


def _incoming_context() -> otel_context.Context | None:
    """The carried delivery's context, when no span of ours or anyone's is current."""
    headers = _INCOMING.get()
    if headers is None or trace.get_current_span() is not trace.INVALID_SPAN:
        return None
    return extract(headers)


class _NonRecordingSpan(AbstractContextManager[Span]):
    """``start_as_current_span`` of the API's no-op tracer, minus its layers.

    With no SDK, a "span" is the parent from ``context`` (or the current one)
    as a non-recording span, made current until the block ends; so the trace
    still passes through. The API gets there through four nested context
    managers and an attribute dict it drops; this is a third of the cost of
    a delivery's tracing when tracing is off (docs/performance.md).
    """

    __slots__ = ("_carried", "_span", "_token")

    def __init__(self, context: otel_context.Context | None) -> None:
        self._span = _NO_OP_TRACER.start_span("", context)

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        # This context replaces the carried delivery's (a new trace must not
        # fall back to it).
        self._carried = _INCOMING.set(None)
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        _INCOMING.reset(self._carried)
        otel_context.detach(self._token)


def _is_sdk_absent() -> bool:
    return isinstance(trace.get_tracer_provider(), _NO_SDK)


def is_enabled() -> bool:
    """True once a tracer provider that records spans (the SDK's) is installed.

    Consumers decide once, when their plan is built, whether to open spans
    per delivery; a provider installed later is used by publishes but not
    by a worker already built. Never imports the SDK.
    """
    return not _is_sdk_absent()


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
    propagate.inject(carrier, _incoming_context())
    if TRACEPARENT in carrier:
        headers.pop(TRACESTATE, None)
    headers.update(carrier)


@contextlib.contextmanager
def resumed(headers: Mapping[str, Any] | None) -> Iterator[None]:
    """Make the trace context stored in ``headers`` current for the block.

    For a publish made long after the context was captured (the outbox
    relay publishing a row written during a request): its span continues
    that request's trace.
    """
    token = otel_context.attach(extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


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
    provider = trace.get_tracer_provider()
    if isinstance(provider, _NO_SDK):
        return _non_recording(context)
    attrs = _attributes(
        "send", destination if exchange is None else exchange, routing_key, message_id
    )
    attrs["messaging.operation.name"] = name
    if attributes:
        attrs.update(attributes)
    return _recording_span(
        provider, f"{name} {destination}", context, SpanKind.PRODUCER, attrs, links
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
    settles them inside this span. The worker uses ``delivery_span`` and
    ``delivery_attributes`` instead, which skip the attributes of an
    unsampled delivery.
    """
    context = extract(headers)
    provider = trace.get_tracer_provider()
    if isinstance(provider, _NO_SDK):
        return _NonRecordingSpan(context)
    attrs = dict(_process_span_args(queue, consumer)[1])
    attrs.update(_attributes("process", queue, routing_key, message_id))
    if attributes:
        attrs.update(attributes)
    return _recording_span(
        provider, f"process {queue}", context, SpanKind.CONSUMER, attrs,
        record_exception=False,
    )


def delivery_span(
    headers: Mapping[str, Any] | None, queue: str, consumer: str
) -> AbstractContextManager[Span]:
    """The CONSUMER span of one delivery, started with only the attributes fixed per queue.

    The rest (``delivery_attributes``) are worth building only when
    ``span.is_recording()``: an unsampled delivery then costs the sampler's
    decision and little else. The attributes a sampler can read at the start
    are the ones that say what the span is (system, operation, queue,
    consumer group). Raises nothing of its own.
    """
    provider = trace.get_tracer_provider()
    context = _incoming(headers)
    if isinstance(provider, _NO_SDK):
        return _NonRecordingSpan(context)
    name, attributes = _process_span_args(queue, consumer)
    return _recording_span(provider, name, context, SpanKind.CONSUMER, attributes,
                           record_exception=False)


def delivery_attributes(
    routing_key: str, message_id: str | None, delivery_tag: int | None, retry_count: int
) -> dict[str, Any]:
    """The per-delivery attributes of a process span (see ``delivery_span``)."""
    attributes: dict[str, Any] = {"pipeline.retry.count": retry_count}
    if routing_key:  # semconv: conditionally required "if not empty"
        attributes["messaging.rabbitmq.destination.routing_key"] = routing_key
    if message_id:
        attributes["messaging.message.id"] = message_id
    if delivery_tag is not None:
        attributes["messaging.rabbitmq.message.delivery_tag"] = delivery_tag
    return attributes


@functools.lru_cache(maxsize=256)
def _process_span_args(queue: str, consumer: str) -> tuple[str, Mapping[str, Any]]:
    # A worker consumes one or two queues; the SDK copies the attributes, so
    # one mapping per queue serves every span.
    attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue,
        "messaging.consumer.group.name": consumer,
    }
    return f"process {queue}", MappingProxyType(attributes)


@functools.cache
def _fields_of(propagator: TextMapPropagator) -> frozenset[str]:
    return frozenset(propagator.fields)


def _incoming(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """``extract(headers)``, or None (the current context) when no propagator's header is there.

    Without any of those headers ``extract`` returns the current context
    unchanged, so None is the same answer; the check is one set intersection
    against the configured propagators' fields, where ``extract`` walks
    every propagator.
    """
    if not headers or _fields_of(propagate.get_global_textmap()).isdisjoint(headers):
        return None
    return extract(headers)


def handler_span(event_type: str, handler_name: str) -> AbstractContextManager[Span]:
    """An INTERNAL span around the user's handler; its exception is recorded here."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, _NO_SDK):
        return _non_recording(None)
    name, attributes = _handler_span_args(event_type, handler_name)
    return _recording_span(provider, name, None, SpanKind.INTERNAL, attributes)


@functools.lru_cache(maxsize=1024)
def _handler_span_args(event_type: str, handler_name: str) -> tuple[str, Mapping[str, Any]]:
    # A consumer has a handful of routes; the SDK copies the attributes, so
    # one mapping per route serves every span.
    attributes = {"code.function.name": handler_name, "cloudevents.event_type": event_type}
    return f"handle {event_type}", MappingProxyType(attributes)


def mark_error(span: Span, exc: BaseException) -> None:
    """Record that the operation in ``span`` failed with ``exc`` (``error.type`` + status)."""
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


def link_to(headers: Mapping[str, Any] | None) -> list[Link]:
    """A link to the trace recorded in ``headers`` (used when replay starts a new trace)."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def current_ids() -> tuple[str, str] | None:
    """The current (trace_id, span_id) as hex, or None outside any trace.

    With tracing off, inside a delivery, these are the ids its headers carry.
    """
    span_context = trace.get_current_span(_incoming_context()).get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def trace_id_of(headers: Mapping[str, Any] | None) -> str | None:
    """The trace id carried by a message's headers, for notices and listings."""
    span_context = trace.get_current_span(extract(headers)).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
