"""The key an event is recorded under, the same on every side of the ledger.

The CloudEvents id when the body is a CloudEvent; else the AMQP message id;
else ``generated-`` and a hash of the body, so that the consumer's record, the
ledger's copy of the published message and its dead-letter copy all agree.

A message with no id at all gets one when it is republished (aiormq gives
every publish a message id), so the worker writes the generated key into the
``pipeline-ledger-id`` header first: its retry and dead-letter copies carry
it, and ``pipeline dead-letters show`` shows it next to the entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pipeline import envelope
from pipeline.errors import InvalidMessageError

CLOUDEVENT = "cloudevent"
MESSAGE_ID = "message-id"
GENERATED = "generated"
GENERATED_PREFIX = "generated-"
LEDGER_ID_HEADER = "pipeline-ledger-id"


def event_key(
    body: bytes,
    message_id: str | None,
    cloud_event: envelope.CloudEvent | None = None,
    headers: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """``(key, kind)`` for a message; ``cloud_event`` saves decoding the body again."""
    if cloud_event is None:
        try:
            cloud_event = envelope.decode(body)
        except InvalidMessageError:
            cloud_event = None
    if cloud_event is not None:
        return cloud_event.id, CLOUDEVENT
    generated = (headers or {}).get(LEDGER_ID_HEADER)
    if isinstance(generated, bytes):
        generated = generated.decode(errors="replace")
    if isinstance(generated, str) and generated.startswith(GENERATED_PREFIX):
        return generated, GENERATED
    if message_id:
        return message_id, MESSAGE_ID
    return GENERATED_PREFIX + hashlib.sha256(body).hexdigest()[:32], GENERATED


def tag_generated(headers: dict[str, Any], body: bytes) -> None:
    """Write the generated key of an id-less, non-CloudEvent message into its headers."""
    if LEDGER_ID_HEADER not in headers:
        key, kind = event_key(body, None)
        if kind == GENERATED:
            headers[LEDGER_ID_HEADER] = key
