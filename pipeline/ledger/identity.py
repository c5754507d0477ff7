"""The key an event is recorded under, the same on every side of the ledger.

The CloudEvents id when the body is a CloudEvent; else the AMQP message id;
else ``generated-`` and a hash of the body, so that the consumer's record, the
ledger's copy of the published message and its dead-letter copy all agree.
"""

from __future__ import annotations

import hashlib

from pipeline import envelope
from pipeline.errors import InvalidMessageError

CLOUDEVENT = "cloudevent"
MESSAGE_ID = "message-id"
GENERATED = "generated"
GENERATED_PREFIX = "generated-"


def event_key(
    body: bytes, message_id: str | None, cloud_event: envelope.CloudEvent | None = None
) -> tuple[str, str]:
    """``(key, kind)`` for a message; ``cloud_event`` saves decoding the body again."""
    if cloud_event is None:
        try:
            cloud_event = envelope.decode(body)
        except InvalidMessageError:
            cloud_event = None
    if cloud_event is not None:
        return cloud_event.id, CLOUDEVENT
    if message_id:
        return message_id, MESSAGE_ID
    return GENERATED_PREFIX + hashlib.sha256(body).hexdigest()[:32], GENERATED
