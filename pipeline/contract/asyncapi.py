"""An AsyncAPI 3.0 document generated from an App: what flows where, and in what shape.

    channels     one per event type (a routing key on ``pipeline.events``), one per
                 queue the topology declares for a consumer (its queue, its retry
                 rungs), the dead-letter exchange, the store and the notifier queue
    operations   publish per event type; per consumer: receive, a retry per rung,
                 dead-letter
    messages     one per event type: the CloudEvents envelope whose ``data`` is the
                 event model's JSON Schema, with our AMQP headers

The topology is the one the workers declare (``App.topology``), so a consumer's
own ladder shows as its rungs. The document holds no credentials: servers
are ``host:port`` and vhost only. Validated with the official parser in
tests/integration/test_asyncapi.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline import headers as h
from pipeline.contract.schema import (
    component_schemas,
    envelope_schema,
    headers_schema,
)
from pipeline.envelope import CONTENT_TYPE
from pipeline.events import Event
from pipeline.settings import PipelineSettings
from topology import QueueSpec, Topology, naming
from topology.ladder import label_of

if TYPE_CHECKING:
    from pipeline.app import App

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING = "0.3.0"
ENVELOPE = "CloudEvent"
HEADERS = "PipelineHeaders"

Document = dict[str, Any]


def asyncapi_document(
    app: App, settings: PipelineSettings, *, title: str | None = None, version: str = "1.0.0"
) -> Document:
    """The AsyncAPI 3.0 document of ``app`` as deployed with ``settings``.

    Raises ``ConfigurationError`` when the App's topology cannot be built.
    """
    topology = app.topology(settings.ladder, settings.delivery_limit,
                            replicas=settings.queue_replicas)
    names, schemas = component_schemas(app.events.values())
    document: Document = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title or f"{settings.service_name} events",
            "version": version,
            "description": _DESCRIPTION,
        },
        "defaultContentType": CONTENT_TYPE,
    }
    servers = _servers(settings)
    if servers:
        document["servers"] = servers
    builder = _Builder(app, topology, settings.vhost)
    builder.add_events()
    builder.add_consumers()
    builder.add_dead_letters()
    document["channels"] = builder.channels
    document["operations"] = builder.operations
    document["components"] = {
        "schemas": {ENVELOPE: envelope_schema(), HEADERS: headers_schema(), **schemas},
        "messages": {t: _message(app.events[t], names[t]) for t in sorted(app.events)},
    }
    return document


_DESCRIPTION = (
    "Typed events as CloudEvents 1.0 (structured JSON) on RabbitMQ. Producers publish to the "
    "topic exchange `pipeline.events` with publisher confirms and `mandatory` (an unroutable "
    "event is an error). Each consumer owns a durable quorum queue; a failed delivery climbs "
    "the consumer's retry rungs (queues whose TTL leads back to its own queue only) and then "
    "goes to `pipeline.dead-letter`, kept in `pipeline.dead-letter.store` and announced to "
    "the admin notifier. Handlers ack only after handling; delivery is at least once."
)


def _servers(settings: PipelineSettings) -> dict[str, Any]:
    if settings.is_memory:
        return {}
    parts = urlsplit(settings.amqp_url.get_secret_value())
    protocol = "amqps" if parts.scheme == "amqps" else "amqp"
    port = parts.port or (5671 if protocol == "amqps" else 5672)
    return {
        "rabbitmq": {
            "host": f"{parts.hostname}:{port}",
            "protocol": protocol,
            "protocolVersion": "0.9.1",
            "pathname": "/" + settings.vhost.lstrip("/"),
            "description": f"RabbitMQ, vhost {settings.vhost!r}",
        }
    }


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)}


def _message(model: type[Event], schema_name: str) -> dict[str, Any]:
    doc = inspect.getdoc(model)
    message: dict[str, Any] = {
        "name": model.event_type,
        "title": model.__name__,
        "contentType": CONTENT_TYPE,
        "headers": _ref("components", "schemas", HEADERS),
        "payload": {
            "allOf": [
                _ref("components", "schemas", ENVELOPE),
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "type": {"type": "string", "const": model.event_type},
                        "data": _ref("components", "schemas", schema_name),
                    },
                },
            ]
        },
        "bindings": {"amqp": {"messageType": model.event_type, "bindingVersion": AMQP_BINDING}},
    }
    if doc and doc != inspect.getdoc(Event):
        message["summary"] = doc.splitlines()[0]
    return message


def _queue_binding(name: str, vhost: str) -> dict[str, Any]:
    queue = {"name": name, "durable": True, "exclusive": False, "autoDelete": False,
             "vhost": vhost}
    return {"amqp": {"is": "queue", "queue": queue, "bindingVersion": AMQP_BINDING}}


def _exchange_binding(name: str, kind: str, vhost: str) -> dict[str, Any]:
    exchange = {"name": name, "type": kind, "durable": True, "autoDelete": False,
                "vhost": vhost}
    return {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP_BINDING}}


class _Builder:
    """Collects channels and operations; message references are per channel in AsyncAPI 3."""

    def __init__(self, app: App, topology: Topology, vhost: str) -> None:
        self.app = app
        self.topology = topology
        self.vhost = vhost
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def channel(self, key: str, address: str | None, description: str,
                event_types: Iterable[str], bindings: dict[str, Any]) -> None:
        self.channels[key] = {
            "address": address,
            "description": description,
            "messages": {t: _ref("components", "messages", t) for t in sorted(event_types)},
            "bindings": bindings,
        }

    def operation(self, key: str, action: str, channel: str, summary: str,
                  event_types: Iterable[str], bindings: dict[str, Any]) -> None:
        self.operations[key] = {
            "action": action,
            "channel": _ref("channels", channel),
            "summary": summary,
            "messages": [_ref("channels", channel, "messages", t) for t in sorted(event_types)],
            "bindings": {"amqp": {**bindings, "bindingVersion": AMQP_BINDING}},
        }

    def add_events(self) -> None:
        events = naming.EVENTS_EXCHANGE
        for event_type in sorted(self.app.events):
            self.channel(
                event_type, event_type,
                f"Events of type {event_type}, published to the topic exchange {events} "
                "with the type as routing key.",
                [event_type], _exchange_binding(events, "topic", self.vhost),
            )
            self.operation(
                f"publish.{event_type}", "send", event_type,
                f"Publish a {event_type} event (persistent, mandatory, confirmed)",
                [event_type], {"deliveryMode": 2, "mandatory": True},
            )

    def add_consumers(self) -> None:
        for consumer in sorted(self.app.consumers.values(), key=lambda c: c.name):
            handled = sorted(consumer.routes)
            queues = self.topology.queues_of(consumer.name)
            rungs = [q for q in queues if q.role == "retry"]
            patterns = ", ".join(consumer.patterns)
            ladder = ", ".join(_ttl_label(q) for q in rungs) or "none"
            self.channel(
                consumer.queue, consumer.queue,
                f"The queue of consumer {consumer.name}: bound to {naming.EVENTS_EXCHANGE} "
                f"with {patterns}; quorum queue. Retry rungs: {ladder}.",
                handled, _queue_binding(consumer.queue, self.vhost),
            )
            self.operation(
                f"{consumer.name}.receive", "receive", consumer.queue,
                f"{consumer.name} handles {', '.join(handled) or 'nothing yet'}; acked after "
                "the handler returns, or after its retry or dead-letter copy is confirmed",
                handled, {"ack": True},
            )
            express = consumer.express_queue
            if any(q.name == express for q in queues):
                self.channel(
                    express, express,
                    f"The express lane of consumer {consumer.name}: bound to "
                    f"{naming.EXPRESS_EXCHANGE} with {patterns} (events published with "
                    "priority express); quorum queue, consumed beside its queue. Its retries "
                    f"go through the same rungs back to {consumer.queue}.",
                    handled, _queue_binding(express, self.vhost),
                )
                self.operation(
                    f"{consumer.name}.receive-express", "receive", express,
                    f"{consumer.name} handles express events before the standard ones waiting",
                    handled, {"ack": True},
                )
            for rung in rungs:
                self._add_rung(consumer.name, consumer.queue, rung, handled)

    def _add_rung(self, consumer: str, home: str, rung: QueueSpec, handled: list[str]) -> None:
        wait = _ttl_label(rung)
        self.channel(
            rung.name, rung.name,
            f"Retry rung of {consumer}: a failed delivery waits {wait} here (queue TTL), "
            f"then goes back to {home} only.",
            handled, _queue_binding(rung.name, self.vhost),
        )
        self.operation(
            f"{consumer}.retry.{wait}", "send", rung.name,
            f"{consumer} retries a failed delivery after {wait} (confirmed copy, then ack)",
            handled, {"deliveryMode": 2, "mandatory": True},
        )

    def add_dead_letters(self) -> None:
        every = sorted({t for c in self.app.consumers.values() for t in c.routes})
        exchange = naming.DEAD_LETTER_EXCHANGE
        self.channel(
            exchange, None,
            f"The dead-letter exchange (fanout): copies carry {h.DEAD_LETTER_REASON} and "
            f"{h.LAST_ERROR} in their headers.",
            every, _exchange_binding(exchange, "fanout", self.vhost),
        )
        for name, text in (
            (naming.DEAD_LETTER_STORE, "Dead letters kept for `pipeline dead-letters list` "
                                       "and replay; no consumer."),
            (naming.ADMIN_NOTIFIER_QUEUE, "Dead letters for the admin notifier, which tells "
                                          "someone (log, webhook, e-mail)."),
        ):
            self.channel(name, name, text, every, _queue_binding(name, self.vhost))
        for consumer in sorted(self.app.consumers.values(), key=lambda c: c.name):
            self.operation(
                f"{consumer.name}.dead-letter", "send", exchange,
                f"{consumer.name} dead-letters a delivery: retries exhausted, a permanent "
                "error, an invalid message or an unknown event type",
                sorted(consumer.routes), {"deliveryMode": 2, "mandatory": True},
            )


def _ttl_label(queue: QueueSpec) -> str:
    """The wait of a rung, read from the TTL the topology gives its queue."""
    return label_of(timedelta(milliseconds=int(queue.arguments.get("x-message-ttl", 0))))
