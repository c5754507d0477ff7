"""What the in-memory broker answers when a client asks for something wrong.

The same reply codes and texts as RabbitMQ (checked against 3.10 by
tests/parity), so aiormq raises the same exceptions (``ChannelNotFoundEntity``,
``ChannelPreconditionFailed``...) and our code translates them the same way.
A channel error closes the channel; a connection error closes the connection.
"""

from __future__ import annotations

NOT_FOUND = 404
ACCESS_REFUSED = 403
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

_NAMES = {
    NOT_FOUND: "NOT_FOUND",
    ACCESS_REFUSED: "ACCESS_REFUSED",
    RESOURCE_LOCKED: "RESOURCE_LOCKED",
    PRECONDITION_FAILED: "PRECONDITION_FAILED",
    FRAME_ERROR: "FRAME_ERROR",
    COMMAND_INVALID: "COMMAND_INVALID",
    CHANNEL_ERROR: "CHANNEL_ERROR",
    UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
    NOT_ALLOWED: "NOT_ALLOWED",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    INTERNAL_ERROR: "INTERNAL_ERROR",
}


# A reply text is an AMQP short string; RabbitMQ cuts longer ones to this.
MAX_REPLY_TEXT = 255


class AmqpError(Exception):
    """A broker-side error with its AMQP reply code and RabbitMQ's reply text."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        text = f"{_NAMES[code]} - {detail}"
        if len(text.encode()) > MAX_REPLY_TEXT:
            text = text.encode()[:MAX_REPLY_TEXT - 3].decode(errors="ignore") + "..."
        self.text = text
        super().__init__(self.text)


class AmqpChannelError(AmqpError):
    """Closes the channel it happened on (Channel.Close)."""


class AmqpConnectionError(AmqpError):
    """Closes the whole connection (Connection.Close)."""


def not_found(kind: str, name: str, vhost: str) -> AmqpChannelError:
    return AmqpChannelError(NOT_FOUND, f"no {kind} '{name}' in vhost '{vhost}'")


def precondition_failed(detail: str) -> AmqpChannelError:
    return AmqpChannelError(PRECONDITION_FAILED, detail)


def not_implemented(detail: str) -> AmqpConnectionError:
    return AmqpConnectionError(NOT_IMPLEMENTED, detail)
