"""A big ledger on disk (SQLite) and how fast ``events show`` answers on it.

The rows are written with the standard library's sqlite3 in a few large
transactions (the fixture, not the ledger's write path, which the other
ledger cases measure); then ``LedgerQuery.status`` is timed for random ids.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.results import Result, Target
from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.ledger.store import LedgerStore

CHUNK = 50_000
LOOKUPS = 300


def _fill(path: Path, events: int) -> None:
    conn = sqlite3.connect(path)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for start in range(0, events, CHUNK):
            ids = range(start, min(start + CHUNK, events))
            when = [(base + timedelta(seconds=i)).isoformat(" ") for i in ids]
            conn.executemany(
                "INSERT INTO ledger_events (id, id_kind, type, source, routing_key, "
                "published_at, first_seen_at, updated_at, state) VALUES "
                "(?, 'cloudevent', 'orders.order.placed', 'bench', 'orders.order.placed', "
                "?, ?, ?, ?)",
                [(f"event-{i}", w, w, w, "failed" if i % 50 == 0 else "completed")
                 for i, w in zip(ids, when, strict=True)])
            conn.executemany(
                "INSERT INTO ledger_consumers (event_id, consumer, state, clock_replay, "
                "clock_retry, clock_delivery, clock_phase, updated_at) "
                "VALUES (?, 'billing', 'completed', 0, 0, 0, 1, ?)",
                [(f"event-{i}", w) for i, w in zip(ids, when, strict=True)])
            conn.executemany(
                "INSERT INTO ledger_attempts (event_id, consumer, replay, retry, delivery, "
                "started_at, ended_at, outcome) VALUES (?, 'billing', 0, 0, 0, ?, ?, 'acked')",
                [(f"event-{i}", w, w) for i, w in zip(ids, when, strict=True)])
            conn.commit()
    finally:
        conn.close()


def show_latency(directory: Path, events: int) -> Result:
    """p99 of ``events show``'s query over ``LOOKUPS`` random ids of a ledger of ``events``."""
    path = directory / "big-ledger.db"
    engine = engine_for(f"sqlite:///{path}")
    LedgerStore(engine).create()
    started = time.perf_counter()
    _fill(path, events)
    filled_s = time.perf_counter() - started
    query = LedgerQuery(engine)
    rng = random.Random(15)
    timings = []
    for _ in range(LOOKUPS):
        event_id = f"event-{rng.randrange(events)}"
        began = time.perf_counter()
        status = query.status(event_id)
        timings.append(time.perf_counter() - began)
        if status is None or not status.consumers["billing"].attempts:
            raise RuntimeError(f"{event_id} is missing from the big ledger")
    engine.dispose()
    timings.sort()
    p99 = statistics.quantiles(timings, n=100, method="inclusive")[98] * 1000
    return Result("ledger", f"events show, ledger of {events:,} events", "ms", False, [p99],
                  target=Target("value", at_most=50.0),
                  note=f"p99 of {LOOKUPS} random ids (median "
                       f"{statistics.median(timings) * 1000:.2f} ms); fixture written in "
                       f"{filled_s:.0f} s, 3 rows per event")
