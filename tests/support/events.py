"""Event models the tests publish and consume."""

from __future__ import annotations

from typing import ClassVar

from pipeline import Event


class ThingHappened(Event):
    event_type: ClassVar[str] = "things.thing.happened"

    n: int
    note: str = ""


class OtherThingHappened(Event):
    event_type: ClassVar[str] = "things.other.happened"

    n: int
