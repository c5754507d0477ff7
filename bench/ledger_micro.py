"""What the recorder middleware costs one delivery, measured without a broker.

A delivery of a real envelope passes through ``LedgerRecorder`` (and, for the
baseline, straight to the innermost step); the flush is not included (it is
one JSON encode and one publish per batch, in its own task).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import bench_event
from bench.results import Result, Sample
from pipeline import PipelineSettings, envelope
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.ledger.recorder import LedgerRecorder


class _Message:
    """What the recorder reads of an incoming message."""

    def __init__(self) -> None:
        self.cloud_event = envelope.wrap(bench_event(1), "bench")
        self.body = envelope.encode(self.cloud_event)
        self.message_id = self.cloud_event.id
        self.headers: dict[str, Any] = {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
        self.type = self.cloud_event.type


async def _innermost(delivery: Delivery) -> Outcome:
    return Outcome.ACKED


async def _time(count: int, recorder: LedgerRecorder | None) -> Sample:
    message = _Message()
    deliveries = [Delivery(message, "bench", "q", envelope=message.cloud_event)  # type: ignore[arg-type]
                  for _ in range(count)]
    started = time.perf_counter()
    for delivery in deliveries:
        if recorder is None:
            await _innermost(delivery)
        else:
            await recorder(delivery, _innermost)
    return Sample((time.perf_counter() - started) / count * 1e6)


async def recorder_cost(reps: int, count: int) -> Result:
    ours, bare = [], []
    for _ in range(reps):
        recorder = LedgerRecorder("bench", PipelineSettings())
        ours.append(await _time(count, recorder))
        bare.append(await _time(count, None))
    return Result.of("ledger", "recorder middleware per delivery, on / off", "us", False,
                     ours, bare, note=f"{count} deliveries per rep, no broker, flush excluded")
