"""A schedule: an event to publish on a cron expression or every fixed period.

Ticks are computed, never counted: a cron tick is what the expression says
(in UTC), an ``every`` tick is a multiple of the period since the Unix epoch.
So two replicas, or one restarted, agree on every tick, and the event id of
a tick (uuid5 of the schedule and the tick time) is the same wherever and
however often it is fired: a consumer with an ``Inbox`` runs it once.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from pipeline.errors import ConfigurationError
from pipeline.events import validate_event_type

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Namespace of tick event ids: uuid5(TICKS, "<schedule>|<tick ISO>").
TICKS = uuid.UUID("7f1b6f57-32b6-4d0e-9a55-0c0c8d1e5a10")
_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$")


class Missed(enum.StrEnum):
    """What a leader does with ticks that passed while no scheduler ran."""

    SKIP = "skip"  # fire none of them: the next tick comes on time
    ONCE = "once"  # fire the latest missed one, once


@dataclass(frozen=True)
class Schedule:
    """Publish ``event_type`` with ``data`` on ``cron`` (UTC) or ``every`` period.

    ``name`` defaults to the event type; it names the schedule in logs, in
    `pipeline schedules list` and in each tick's event id. Raises
    ``ConfigurationError`` for neither or both of cron/every, a cron the
    library cannot read, a period under one second, or a bad name.
    """

    event_type: str
    cron: str | None = None
    every: timedelta | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    missed: Missed = Missed.SKIP
    name: str = ""

    def __post_init__(self) -> None:
        validate_event_type(self.event_type)
        object.__setattr__(self, "name", self.name or self.event_type)
        object.__setattr__(self, "missed", Missed(self.missed))
        if not _NAME.match(self.name):
            raise ConfigurationError(f"schedule name {self.name!r}: use lowercase words and dots")
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"schedule {self.name!r}: give cron= or every=, not both")
        if self.every is not None and self.every < timedelta(seconds=1):
            raise ConfigurationError(f"schedule {self.name!r}: every= must be at least 1s")
        if self.cron is not None:
            try:
                CronSim(self.cron, EPOCH)
            except CronSimError as exc:
                raise ConfigurationError(
                    f"schedule {self.name!r}: cannot read cron {self.cron!r}: {exc}"
                ) from None

    @property
    def when(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every}"

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``."""
        if self.every is not None:
            periods = (moment - EPOCH) // self.every
            return EPOCH + (periods + 1) * self.every
        assert self.cron is not None
        # cronsim works in whole seconds and yields ticks after its start.
        start = moment.replace(microsecond=0)
        return next(iter(CronSim(self.cron, start.astimezone(UTC))))

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``."""
        if self.every is not None:
            return EPOCH + ((moment - EPOCH) // self.every) * self.every
        assert self.cron is not None
        return next(iter(CronSim(self.cron, moment.astimezone(UTC), reverse=True)))

    def tick_id(self, tick: datetime) -> str:
        """The event id of ``tick``: the same on every replica and every retry."""
        return str(uuid.uuid5(TICKS, f"{self.name}|{tick.astimezone(UTC).isoformat()}"))
