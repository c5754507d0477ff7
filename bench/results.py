"""What a case measures: samples per rep for ours and raw, their ratio, a target.

Every ratio is ours / raw from the SAME rep, and the two sides of a rep run
back to back in alternating order (ours first on even reps, raw first on
odd ones), so a load drift on this shared machine hits both sides.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Stats:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent: how noisy the reps were."""
        return 100 * (self.high - self.low) / self.median if self.median else 0.0

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n,
                "spread_pct": round(self.spread_pct, 1)}


@dataclass(frozen=True)
class Target:
    """A goal from the issue: on the ratio (ours/raw), our own value, or ours - raw."""

    on: Literal["ratio", "value", "difference"]
    at_least: float | None = None
    at_most: float | None = None

    def is_met(self, value: float) -> bool:
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.at_most is not None and value > self.at_most)

    def describe(self, unit: str) -> str:
        suffix = "x" if self.on == "ratio" else f" {unit}"
        if self.on == "difference":
            suffix += " over raw"
        if self.at_least is not None:
            return f">= {self.at_least:g}{suffix}"
        return f"<= {self.at_most:g}{suffix}"


@dataclass(frozen=True)
class Sample:
    """One timed run: its figure and the client process's CPU time per message.

    CPU per message (``time.process_time``, all threads of this process)
    moves far less than msg/s when other jobs load the machine, so it
    explains a noisy throughput ratio: how much work each side does per message.
    """

    value: float
    cpu_us: float | None = None


@dataclass
class Result:
    """One line of the report."""

    family: str
    case: str
    unit: str
    higher_is_better: bool
    ours: list[float]
    raw: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    cpu_ours: list[float] = field(default_factory=list)
    cpu_raw: list[float] = field(default_factory=list)

    @classmethod
    def of(
        cls, family: str, case: str, unit: str, higher_is_better: bool,
        ours: list[Sample], raw: list[Sample], **extra: Any,
    ) -> Result:
        """A result from timed samples, keeping their CPU figures."""
        return cls(
            family, case, unit, higher_is_better, [s.value for s in ours],
            [s.value for s in raw],
            cpu_ours=[s.cpu_us for s in ours if s.cpu_us is not None],
            cpu_raw=[s.cpu_us for s in raw if s.cpu_us is not None], **extra,
        )

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> Result:
        """The inverse of ``dataclasses.asdict`` (results from a child process)."""
        target = fields.get("target")
        return cls(**{**fields, "target": Target(**target) if target else None})

    @property
    def ratios(self) -> list[float]:
        return [o / r for o, r in zip(self.ours, self.raw, strict=False) if r]

    @property
    def judged(self) -> float | None:
        """The median the target applies to."""
        if self.target is None:
            return None
        samples = {
            "ratio": self.ratios,
            "value": self.ours,
            # ours - raw within each rep, like the ratios
            "difference": [o - r for o, r in zip(self.ours, self.raw, strict=False)],
        }[self.target.on]
        return Stats.of(samples).median if samples else None

    @property
    def met(self) -> bool | None:
        judged = self.judged
        return None if judged is None or self.target is None else self.target.is_met(judged)

    def to_json(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "family": self.family,
            "case": self.case,
            "unit": self.unit,
            "better": "higher" if self.higher_is_better else "lower",
            "ours": Stats.of(self.ours).to_json() if self.ours else None,
            "raw": Stats.of(self.raw).to_json() if self.raw else None,
            "ratio": Stats.of(ratios).to_json() if ratios else None,
            "cpu_us_per_message": {
                "ours": Stats.of(self.cpu_ours).to_json() if self.cpu_ours else None,
                "raw": Stats.of(self.cpu_raw).to_json() if self.cpu_raw else None,
            },
            "samples": {"ours": self.ours, "raw": self.raw, "ratio": ratios,
                        "cpu_ours": self.cpu_ours, "cpu_raw": self.cpu_raw},
            "target": (self.target.describe(self.unit) if self.target else None),
            "met": self.met,
            "note": self.note,
        }


async def interleave(
    reps: int, ours: Callable[[], Awaitable[T]], raw: Callable[[], Awaitable[T]]
) -> tuple[list[T], list[T]]:
    """Run both sides ``reps`` times, alternating which goes first."""
    ours_samples: list[T] = []
    raw_samples: list[T] = []
    for rep in range(reps):
        if rep % 2 == 0:
            ours_samples.append(await ours())
            raw_samples.append(await raw())
        else:
            raw_samples.append(await raw())
            ours_samples.append(await ours())
    return ours_samples, raw_samples
