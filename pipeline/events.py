"""The base class for typed events.

    class OrderPlaced(Event):
        event_type: ClassVar[str] = "orders.order.placed"
        order_id: str
        amount_cents: int

``event_type`` is the CloudEvents ``type`` and the default routing key, so it
follows ``<domain>.<entity>.<past-tense-verb>``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")


def validate_event_type(event_type: str) -> str:
    """Return ``event_type`` or raise ``ValueError`` explaining the expected shape."""
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(
            f"event type {event_type!r} must be dot-separated lowercase words such as "
            "'orders.order.placed' (it is also the routing key)"
        )
    return event_type


class Event(BaseModel):
    """A typed event: subclass it and set ``event_type``."""

    model_config = ConfigDict(frozen=True)

    event_type: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        declared = cls.__dict__.get("event_type")
        if declared is None:
            raise TypeError(
                f"{cls.__name__} must set `event_type: ClassVar[str] = 'domain.entity.verb'`"
            )
        validate_event_type(declared)
