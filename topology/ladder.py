"""The retry ladder: how long a failed message waits before each retry."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_LADDER = "1s,5s,30s,5m,30m"
MAX_RUNGS = 99

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"50ms"``, ``"1s"``, ``"5m"``, ``"1.5h"`` into a timedelta.

    Raises ``ValueError`` naming the bad text and the accepted units.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"cannot read duration {text!r}: write a number and a unit "
            "(ms, s, m or h), for example 500ms, 5s, 30m"
        )
    value, unit = match.groups()
    return timedelta(milliseconds=float(value) * _UNITS_MS[unit])


def label_of(delay: timedelta) -> str:
    """The shortest exact label for a delay: 1s, 5m, 30m, 1h, 50ms."""
    ms = round(delay.total_seconds() * 1000)
    for unit in ("h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True)
class RetryRung:
    """One step of the ladder: a delay and its label (used in queue names)."""

    delay: timedelta

    @property
    def label(self) -> str:
        return label_of(self.delay)

    @property
    def ttl_ms(self) -> int:
        return round(self.delay.total_seconds() * 1000)


@dataclass(frozen=True)
class RetryLadder:
    """An ordered sequence of retry delays; one retry per rung, then dead-letter."""

    rungs: tuple[RetryRung, ...]

    def __post_init__(self) -> None:
        labels = [rung.label for rung in self.rungs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"retry ladder repeats a delay: {','.join(labels)}")
        if any(rung.ttl_ms <= 0 for rung in self.rungs):
            raise ValueError("every retry delay must be longer than 0ms")
        if len(self.rungs) > MAX_RUNGS:  # rung names carry a two-digit position
            raise ValueError(f"a retry ladder has at most {MAX_RUNGS} rungs, not {len(self.rungs)}")

    @classmethod
    def parse(cls, text: str) -> RetryLadder:
        """Build a ladder from ``"1s,5s,30s,5m,30m"``; an empty string means no retries."""
        parts = [part for part in text.split(",") if part.strip()]
        return cls(tuple(RetryRung(parse_duration(part)) for part in parts))

    @classmethod
    def of(cls, delays: Sequence[timedelta]) -> RetryLadder:
        return cls(tuple(RetryRung(delay) for delay in delays))

    def limited(self, max_retries: int | None) -> RetryLadder:
        """The first ``max_retries`` rungs (all of them for None): a policy's shorter ladder."""
        if max_retries is None or max_retries >= len(self.rungs):
            return self
        return RetryLadder(self.rungs[:max(max_retries, 0)])

    def __len__(self) -> int:
        return len(self.rungs)

    def __iter__(self) -> Iterator[RetryRung]:
        return iter(self.rungs)

    def __getitem__(self, index: int) -> RetryRung:
        return self.rungs[index]

    def __str__(self) -> str:
        return ",".join(rung.label for rung in self.rungs)
