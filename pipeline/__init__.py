"""Typed CloudEvents on RabbitMQ with confirmed publishing, a visible retry
ladder, a dead-letter store and OpenTelemetry traces across every hop.

The public API is imported on first use (PEP 562): ``from pipeline import
Consumer`` loads the consume side only, and importing any submodule (which
runs this file first) loads nothing else, so a worker process does not pay
for the parts it never touches (docs/performance.md, "Memory").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.app import App
    from pipeline.consume.consumer import Consumer
    from pipeline.consume.context import Context
    from pipeline.consume.delivery import Delivery, Outcome
    from pipeline.consume.protocols import ConsumeMiddleware
    from pipeline.consume.retry import RetryPolicy
    from pipeline.envelope import CloudEvent
    from pipeline.errors import (
        BatchPublishError,
        BrokerUnreachableError,
        ConfigurationError,
        ConfirmTimeoutError,
        HandlerTimeout,
        InvalidMessageError,
        MessageTooLargeError,
        PermanentError,
        PipelineError,
        PublishError,
        PublishRejectedError,
        ReservedHeaderError,
        TransientError,
        UnknownEventTypeError,
        UnroutableError,
    )
    from pipeline.events import Event
    from pipeline.ledger.api import Ledger
    from pipeline.ledger.model import EventStatus, State
    from pipeline.publish.blocking import BlockingPublisher
    from pipeline.publish.publisher import Publisher
    from pipeline.settings import PipelineSettings

_ERRORS = (
    "BatchPublishError", "BrokerUnreachableError", "ConfigurationError", "ConfirmTimeoutError",
    "HandlerTimeout", "InvalidMessageError", "MessageTooLargeError", "PermanentError",
    "PipelineError", "PublishError", "PublishRejectedError", "ReservedHeaderError",
    "TransientError", "UnknownEventTypeError", "UnroutableError",
)

# Each public name and the module that defines it.
_HOMES: dict[str, str] = {
    "App": "pipeline.app",
    "BlockingPublisher": "pipeline.publish.blocking",
    "CloudEvent": "pipeline.envelope",
    "ConsumeMiddleware": "pipeline.consume.protocols",
    "Consumer": "pipeline.consume.consumer",
    "Context": "pipeline.consume.context",
    "Delivery": "pipeline.consume.delivery",
    "Event": "pipeline.events",
    "EventStatus": "pipeline.ledger.model",
    "Ledger": "pipeline.ledger.api",
    "Outcome": "pipeline.consume.delivery",
    "PipelineSettings": "pipeline.settings",
    "Publisher": "pipeline.publish.publisher",
    "RetryPolicy": "pipeline.consume.retry",
    "State": "pipeline.ledger.model",
    **dict.fromkeys(_ERRORS, "pipeline.errors"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "App",
    "BatchPublishError",
    "BlockingPublisher",
    "BrokerUnreachableError",
    "CloudEvent",
    "ConfigurationError",
    "ConfirmTimeoutError",
    "ConsumeMiddleware",
    "Consumer",
    "Context",
    "Delivery",
    "Event",
    "EventStatus",
    "HandlerTimeout",
    "InvalidMessageError",
    "Ledger",
    "MessageTooLargeError",
    "Outcome",
    "PermanentError",
    "PipelineError",
    "PipelineSettings",
    "PublishError",
    "PublishRejectedError",
    "Publisher",
    "ReservedHeaderError",
    "RetryPolicy",
    "State",
    "TransientError",
    "UnknownEventTypeError",
    "UnroutableError",
]
