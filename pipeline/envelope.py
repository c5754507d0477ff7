"""CloudEvents 1.0 structured-mode JSON: the only wire format.

We use our own small pydantic model instead of the ``cloudevents`` SDK: the
consumer's hot path needs one validation pass straight from bytes
(``model_validate_json``), typed ``data`` through the user's pydantic model,
and errors we control; the SDK adds a conversion layer for formats we do not
use (binary mode, HTTP). See docs/events.md for the format.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import InvalidMessageError
from pipeline.events import Event

E = TypeVar("E", bound=Event)

CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
# Extension attributes the pipeline writes on events a handler publishes
# (``Context.publish``): the first event of the chain, and the direct cause.
CORRELATION_ID = "correlationid"
CAUSATION_ID = "causationid"
# CloudEvents 1.0: extension names are lowercase ASCII letters and digits.
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope; ``data`` stays untyped until a handler's model reads it."""

    # Extension attributes are allowed by the spec and kept as they are.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    data: Any = None


def wrap(
    event: Event,
    source: str,
    subject: str | None = None,
    extensions: Mapping[str, str] | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """Put a typed event in a fresh envelope with a new UUID and the current UTC time.

    ``event_id`` replaces the new UUID: publishing again with the same id
    (after a ``ConfirmTimeoutError``) lets consumers drop the duplicate.

    ``extensions`` are CloudEvents extension attributes (``correlationid``...);
    raises ``ValueError`` for a name the spec does not allow (lowercase
    letters and digits) or one that is a core attribute.
    """
    if event_id is not None and (not isinstance(event_id, str) or not event_id.strip()):
        raise ValueError("an event id must be a non-empty string")
    extra = dict(extensions or {})
    for name in extra:
        if not _EXTENSION_NAME.match(name) or name in CloudEvent.model_fields:
            raise ValueError(f"{name!r} cannot be a CloudEvents extension attribute: use "
                             "lowercase letters and digits, and not a core attribute's name")
    return CloudEvent(
        specversion="1.0",
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event.event_type,
        time=datetime.now(UTC),
        datacontenttype=DATA_CONTENT_TYPE,
        subject=subject,
        data=event.model_dump(mode="json"),
        **extra,
    )


def encode(envelope: CloudEvent) -> bytes:
    """The structured-mode JSON body; unset optional attributes are left out."""
    return envelope.model_dump_json(exclude_none=True).encode()


_ENVELOPE = CloudEvent.__pydantic_validator__


def decode(body: bytes) -> CloudEvent:
    """Read a body as a CloudEvent; raise ``InvalidMessageError`` saying what is wrong."""
    try:
        # The validator itself: model_validate_json adds only a call layer.
        return cast(CloudEvent, _ENVELOPE.validate_json(body))
    except ValidationError as exc:
        raise InvalidMessageError(f"not a CloudEvents 1.0 JSON body: {_summary(exc)}") from None


def identity(body: bytes) -> tuple[str | None, str | None]:
    """(id, type) as the CloudEvent in ``body`` states them, or Nones; never raises.

    Producers in other languages need not mirror them into the AMQP
    ``message_id`` / ``type`` properties (and a body nested thousands of
    levels deep must not crash whoever asks), so read them leniently.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    event_id, event_type = data.get("id"), data.get("type")
    return (event_id if isinstance(event_id, str) and event_id else None,
            event_type if isinstance(event_type, str) and event_type else None)


def read_data(envelope: CloudEvent, model: type[E]) -> E:
    """Validate the envelope's ``data`` as ``model``; ``InvalidMessageError`` if it does not fit."""
    try:
        return cast(E, model.__pydantic_validator__.validate_python(envelope.data))
    except ValidationError as exc:
        raise InvalidMessageError(
            f"data of {envelope.type} event {envelope.id} does not fit "
            f"{model.__name__}: {_summary(exc)}"
        ) from None


def _summary(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
