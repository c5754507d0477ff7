"""Typed CloudEvents on RabbitMQ with confirmed publishing, a visible retry
ladder, a dead-letter store and OpenTelemetry traces across every hop."""

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
