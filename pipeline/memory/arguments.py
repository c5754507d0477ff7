"""Queue arguments: which the in-memory broker understands, validates and compares.

A redeclare with other values for these arguments, or other ``durable`` /
``auto_delete`` flags, fails with PRECONDITION_FAILED in RabbitMQ 3.10's
words (``topology/declare.py`` parses them). Arguments outside this list
are stored but never compared, as RabbitMQ does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.memory.errors import AmqpChannelError, not_implemented, precondition_failed

INTEGER_ARGUMENTS = frozenset({
    "x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-delivery-limit",
    "x-max-priority", "x-quorum-initial-group-size",
})
COMPARED_ARGUMENTS = INTEGER_ARGUMENTS | {
    "x-queue-type", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-dead-letter-strategy", "x-overflow", "x-single-active-consumer", "x-queue-mode",
    "x-queue-master-locator", "x-queue-leader-locator",
}
QUEUE_TYPES = ("classic", "quorum")
OVERFLOWS = ("drop-head", "reject-publish", "reject-publish-dlx")
STRATEGIES = ("at-most-once", "at-least-once")


@dataclass(frozen=True)
class QueueSettings:
    """What a queue's arguments make it do."""

    queue_type: str = "classic"
    message_ttl_ms: int | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = "drop-head"
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    at_least_once: bool = False
    delivery_limit: int | None = None

    @property
    def is_quorum(self) -> bool:
        return self.queue_type == "quorum"

    @classmethod
    def read(cls, arguments: Mapping[str, Any]) -> QueueSettings:
        queue_type = str(arguments.get("x-queue-type", "classic"))
        overflow = str(arguments.get("x-overflow", "drop-head"))
        # RabbitMQ falls back to at-most-once unless the overflow is reject-publish.
        at_least_once = (queue_type == "quorum" and overflow == "reject-publish"
                         and arguments.get("x-dead-letter-strategy") == "at-least-once")
        dlx = arguments.get("x-dead-letter-exchange")
        dlrk = arguments.get("x-dead-letter-routing-key")
        return cls(
            queue_type=queue_type,
            message_ttl_ms=arguments.get("x-message-ttl"),
            max_length=arguments.get("x-max-length"),
            max_length_bytes=arguments.get("x-max-length-bytes"),
            overflow=overflow,
            dead_letter_exchange=None if dlx is None else str(dlx),
            dead_letter_routing_key=None if dlrk is None else str(dlrk),
            at_least_once=at_least_once,
            delivery_limit=arguments.get("x-delivery-limit") if queue_type == "quorum" else None,
        )


def validate(name: str, vhost: str, arguments: Mapping[str, Any], *, durable: bool,
             exclusive: bool, auto_delete: bool) -> None:
    """Refuse what RabbitMQ refuses when a queue is first declared."""
    where = f"for queue '{name}' in vhost '{vhost}'"
    for key in sorted(INTEGER_ARGUMENTS & set(arguments)):
        value = arguments[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise precondition_failed(
                f"invalid arg '{key}' {where}: \"expected integer, got {type_name(value)}\""
            )
        if value < 0:
            raise precondition_failed(f"invalid arg '{key}' {where}: {{value_negative,{value}}}")
    queue_type = arguments.get("x-queue-type", "classic")
    if queue_type == "stream":
        raise not_implemented(f"stream queues are not implemented by memory:// ('{name}')")
    if queue_type not in QUEUE_TYPES:
        raise precondition_failed(f"invalid arg 'x-queue-type' {where}: unknown queue type")
    for key, allowed in (("x-overflow", OVERFLOWS), ("x-dead-letter-strategy", STRATEGIES)):
        if key in arguments and arguments[key] not in allowed:
            raise precondition_failed(f"invalid arg '{key}' {where}: {arguments[key]!r}")
    if queue_type == "quorum":
        for refused, prop in ((not durable, "non-durable"), (exclusive, "exclusive-owner"),
                              (auto_delete, "auto-delete")):
            if refused:
                raise precondition_failed(f"invalid property '{prop}' {where}")


def check_equivalent(kind: str, name: str, vhost: str, current: Mapping[str, Any],
                     received: Mapping[str, Any]) -> None:
    """Raise PRECONDITION_FAILED for the first compared argument or flag that differs.

    ``current`` and ``received`` hold the flags (``durable``, ``auto_delete``,
    ``type``) as well as the ``x-`` arguments.
    """
    flags = [key for key in current if not key.startswith("x-")]
    arguments = sorted(COMPARED_ARGUMENTS & (set(current) | set(received)))
    for key in [*flags, *arguments]:
        have, want = current.get(key), received.get(key)
        if key == "x-queue-type" and {have, want} <= {None, "classic"}:
            continue  # classic is what an untyped queue is
        if have != want:
            raise _inequivalent(kind, name, vhost, key, want, have)


def _inequivalent(kind: str, name: str, vhost: str, key: str, received: Any, current: Any
                  ) -> AmqpChannelError:
    if received is not None and current is not None:
        detail = f"received {_plain(received)} but current is {_plain(current)}"
    else:
        detail = f"received {_described(received)} but current is {_described(current)}"
    return precondition_failed(
        f"inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': {detail}"
    )


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    return f"'{value}'"


def _described(value: Any) -> str:
    if value is None:
        return "none"
    return f"the value {_plain(value)} of type '{type_name(value)}'"


def type_name(value: Any) -> str:
    """The AMQP field type RabbitMQ names for a value as pamqp encodes it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        for low, high, name in ((-128, 127, "byte"), (-32768, 32767, "short"),
                                (0, 65535, "unsignedshort"), (-2**31, 2**31 - 1, "signedint")):
            if low <= value <= high:
                return name
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str | bytes):
        return "longstr"
    return "table" if isinstance(value, dict) else "array"
