"""A durable record of what the consumer under test handled, so losses are counted.

The consumer writes one row per handled event (``record``) and commits it
before its handler returns, i.e. before the ack. A process killed between
the commit and the ack leaves a row for a message the broker will deliver
again: that is exactly a duplicate, and the ledger counts it.

SQLite in WAL mode with ``synchronous=NORMAL`` survives a killed process
(not a power cut), which is the fault these tests inject.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled (key TEXT NOT NULL, phase TEXT NOT NULL,
                                    pid INTEGER NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS handled_key ON handled (phase, key);
"""


@dataclass(frozen=True)
class Tally:
    """How a set of expected keys compares with what the ledger holds."""

    expected: int
    handled: int  # distinct expected keys handled at least once
    lost: int  # expected keys never handled
    duplicated: int  # extra handlings of expected keys
    unexpected: int  # handled keys nobody expected

    def row(self) -> dict[str, int]:
        return {"expected": self.expected, "handled": self.handled, "lost": self.lost,
                "duplicated": self.duplicated}


class Ledger:
    """One SQLite file shared by the test and the consumer processes it starts."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def record(self, key: str, phase: str = "handled") -> None:
        """Durably note that ``key`` reached ``phase`` (autocommit: one transaction)."""
        self._db.execute("INSERT INTO handled VALUES (?, ?, ?, ?)",
                         (key, phase, os.getpid(), time.time()))

    def count(self, phase: str = "handled") -> int:
        (value,) = self._db.execute(
            "SELECT count(*) FROM handled WHERE phase = ?", (phase,)).fetchone()
        return int(value)

    def count_by(self, pid: int, phase: str = "handled") -> int:
        """Rows written by one consumer process."""
        (value,) = self._db.execute(
            "SELECT count(*) FROM handled WHERE phase = ? AND pid = ?", (phase, pid)).fetchone()
        return int(value)

    def distinct(self, phase: str = "handled") -> int:
        (value,) = self._db.execute(
            "SELECT count(DISTINCT key) FROM handled WHERE phase = ?", (phase,)).fetchone()
        return int(value)

    def counts(self, phase: str = "handled") -> Counter[str]:
        rows = self._db.execute(
            "SELECT key, count(*) FROM handled WHERE phase = ? GROUP BY key", (phase,))
        return Counter({key: n for key, n in rows})

    def tally(self, expected: Iterable[str], phase: str = "handled") -> Tally:
        wanted = set(expected)
        counts = self.counts(phase)
        handled = sum(1 for key in wanted if counts.get(key, 0) > 0)
        return Tally(
            expected=len(wanted),
            handled=handled,
            lost=len(wanted) - handled,
            duplicated=sum(n - 1 for key, n in counts.items() if key in wanted and n > 1),
            unexpected=sum(1 for key in counts if key not in wanted),
        )

    def close(self) -> None:
        self._db.close()
