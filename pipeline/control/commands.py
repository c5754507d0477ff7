"""Typed control commands and their wire format.

A command is a frozen pydantic model with a ``kind`` (``events.cancel``);
on the wire it is JSON with the kind alongside its fields, and the AMQP
``type`` property is the kind too, so the management UI shows what each
entry is. A reader that meets a kind it does not know skips it: new
commands can be added without upgrading every worker first.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.pipeline.control+json"


class ControlCommand(BaseModel):
    """The base of every command: an id, when and by whom it was issued."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: ClassVar[str]
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    issued_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    issued_by: str = ""


C = TypeVar("C", bound=type[ControlCommand])
COMMANDS: dict[str, type[ControlCommand]] = {}


def register_command(cls: C) -> C:
    """Class decorator: make ``cls`` readable from the log by its ``kind``."""
    kind = cls.kind
    if kind in COMMANDS and COMMANDS[kind] is not cls:
        raise ValueError(f"control command kind {kind!r} is registered twice")
    COMMANDS[kind] = cls
    return cls


@register_command
class CancelEvent(ControlCommand):
    """Ack the event without running its handler, in one consumer or (None) in all."""

    kind: ClassVar[str] = "events.cancel"
    event_id: str = Field(min_length=1)
    consumer: str | None = None


@register_command
class PauseConsumer(ControlCommand):
    """Stop consuming ``consumer`` on every replica until a ``ResumeConsumer``."""

    kind: ClassVar[str] = "consumers.pause"
    consumer: str = Field(min_length=1)


@register_command
class ResumeConsumer(ControlCommand):
    """Consume ``consumer`` again after a ``PauseConsumer``."""

    kind: ClassVar[str] = "consumers.resume"
    consumer: str = Field(min_length=1)


@register_command
class BreakerOpened(ControlCommand):
    """A replica's circuit breaker opened: it takes no deliveries (written by the worker)."""

    kind: ClassVar[str] = "consumers.breaker-opened"
    consumer: str = Field(min_length=1)
    replica: str = Field(min_length=1)
    reason: str = ""


@register_command
class BreakerClosed(ControlCommand):
    """A replica's circuit breaker closed again (its probe succeeded, or it started)."""

    kind: ClassVar[str] = "consumers.breaker-closed"
    consumer: str = Field(min_length=1)
    replica: str = Field(min_length=1)


@register_command
class SyncMarker(ControlCommand):
    """Written by a worker when it starts: reading it back means it has read the log."""

    kind: ClassVar[str] = "control.sync"
    worker: str


def encode(command: ControlCommand) -> bytes:
    return json.dumps({"kind": command.kind, **command.model_dump(mode="json")}).encode()


def decode(body: bytes) -> ControlCommand | None:
    """The command in ``body``, or None (logged) for an unknown kind or a malformed entry."""
    try:
        data = json.loads(body)
        kind = data.pop("kind") if isinstance(data, dict) else None
    except (ValueError, KeyError):
        kind, data = None, None
    cls = COMMANDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        log.warning("skipping control log entry of unknown kind %r", kind)
        return None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        log.warning("skipping malformed %s control command: %s", kind, exc.errors()[0]["msg"])
        return None
