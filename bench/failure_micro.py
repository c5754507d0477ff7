"""The failure policy's own work per failure, without a broker: ``python -m bench.failure_micro``.

Not a ``make bench`` case: it prices the two things ours does on a failure
that raw's hand-written path (``bench.raw.RawRetry``) does not, so the failure
path's gap can be read (docs/performance.md):

* ``failure_headers``: the failure bookkeeping (timestamps, origin, the error
  and the traceback, redacted), against raw's two headers;
* pamqp marshalling the copy's content header with those headers, against
  raw's (the same properties, raw's headers);
* the whole failure path to the store on the in-memory broker (``memory://``:
  our Worker against ``bench.raw.RawRetry``, no socket), CPU per failure, with
  Python's default garbage-collector thresholds and with the first
  generation's raised to 10 000 (each in a child process; both sides run with
  the same setting): how much of the gap is the collector's young passes.

``--quick``: tiny counts (``make test-bench`` runs it so it cannot rot).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any, cast

from aio_pika import IncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands, frame
from pamqp.header import ContentHeader

from bench import raw as raw_side
from bench.harness import (
    AfterSettle,
    BenchHappened,
    Tally,
    cpu_per_message,
    memory_backlog,
    our_worker,
)
from pipeline import Consumer, PermanentError
from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import failure_headers
from pipeline.settings import PipelineSettings
from topology import naming

BODY_SIZE = 300


MESSAGE_ID = "c7a0d8e2-1f7b-4a53-9c2e-4f6c1f0a9b11"
EVENT_TYPE = "bench.thing.happened"


def _incoming() -> IncomingMessage:
    """A fresh event as a worker receives it (aio-pika's message over aiormq's delivery)."""
    body = b"{}"
    return IncomingMessage(DeliveredMessage(
        delivery=commands.Basic.Deliver(consumer_tag="bench", delivery_tag=1,
                                        exchange="pipeline.events", routing_key=EVENT_TYPE),
        header=ContentHeader(0, len(body), commands.Basic.Properties(
            content_type="application/cloudevents+json", delivery_mode=2,
            message_id=MESSAGE_ID, message_type=EVENT_TYPE, headers={})),
        body=body, channel=cast(Any, None),
    ), no_ack=True)


def _handler() -> None:
    raise PermanentError("bench: always refused")


def _error() -> Exception:
    try:
        _handler()
    except Exception as exc:
        return exc
    raise AssertionError("unreachable")


def _raw_headers(error: Exception) -> dict[str, Any]:
    headers: dict[str, Any] = {}  # raw drops the broker's x-* headers of an empty table
    headers["retry-count"] = 1
    headers["last-error"] = f"{type(error).__qualname__}: {error}"
    return headers


def _content_header(headers: dict[str, Any]) -> bytes:
    properties = commands.Basic.Properties(
        headers=headers, content_type="application/cloudevents+json", delivery_mode=2,
        message_id=MESSAGE_ID, message_type=EVENT_TYPE, app_id="bench",
        timestamp=datetime.now(UTC),
    )
    return frame.marshal(ContentHeader(0, BODY_SIZE, properties), 1)


def _per_call_us(count: int, run: Any) -> float:
    started = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - started) / count * 1e6


def main(count: int) -> None:
    settings = PipelineSettings()
    errors = [_error() for _ in range(count)]
    delivery = Delivery(_incoming(), "bench", "pipeline.bench")
    ours = failure_headers(delivery, errors[0], settings)
    raw = _raw_headers(errors[0])
    for _ in range(3):
        ours_us = _per_call_us(1, lambda: [failure_headers(delivery, e, settings)
                                           for e in errors]) / count
        raw_us = _per_call_us(1, lambda: [_raw_headers(e) for e in errors]) / count
        ours_frame = _per_call_us(count, lambda: _content_header(ours))
        raw_frame = _per_call_us(count, lambda: _content_header(raw))
        print(f"failure_headers {ours_us:.1f} µs (raw's two headers {raw_us:.1f} µs); content "
              f"header marshalled: ours {ours_frame:.1f} µs ({len(_content_header(ours))} B), "
              f"raw {raw_frame:.1f} µs ({len(_content_header(raw))} B)")


CONSUMER = "bench-fail"
# Python's default first-generation threshold, and a raised one.
GC_THRESHOLDS = (700, 10_000)


def _failing_consumer() -> Consumer:
    consumer = Consumer(CONSUMER, ["bench.#"])

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        raise PermanentError("bench: always refused")

    return consumer


async def _refused(data: dict[str, Any]) -> None:
    raise PermanentError("bench: always refused")


async def _drain(settings: PipelineSettings, count: int, ours: bool) -> float:
    """CPU µs per failure: ``count`` events, each refused and copied to the store."""
    tally = Tally(count)
    consumer = _failing_consumer()
    async with memory_backlog(settings, consumer, count) as connection:
        channel = await connection.channel()
        for stored in (naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_QUEUE):
            await (await channel.get_queue(stored, ensure=False)).purge()
        if ours:
            settle = AfterSettle(lambda _: tally.hit())
            async with our_worker(settings, consumer, middlewares=[settle]) as (worker, _):
                return await cpu_per_message(worker, tally, count)
        retry_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        retry = raw_side.RawRetry(retry_channel, _refused,
                                  lambda headers: (naming.DEAD_LETTER_EXCHANGE, ""))
        started = time.process_time()
        await retry.start(naming.consumer_queue(CONSUMER), 100, tally.hit)
        await tally.wait()
        return (time.process_time() - started) / count * 1e6


def _gc_child(threshold: int, count: int, reps: int) -> None:
    logging.basicConfig(level=logging.CRITICAL)  # every dead-letter logs a line
    gc.set_threshold(threshold, 10, 10)
    settings = PipelineSettings(amqp_url="memory://failure-micro", ledger=False)
    asyncio.run(_drain(settings, count, True))  # warm-up, both sides
    asyncio.run(_drain(settings, count, False))
    samples: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(reps):
        samples["ours"].append(asyncio.run(_drain(settings, count, True)))
        samples["raw"].append(asyncio.run(_drain(settings, count, False)))
    print(json.dumps({side: statistics.median(values) for side, values in samples.items()}))


def gc_share(quick: bool) -> None:
    count, reps = (100, 1) if quick else (3000, 3)
    for threshold in GC_THRESHOLDS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.failure_micro", "--gc-child", str(threshold),
             str(count), str(reps)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the gc child failed:\n{done.stderr[-3000:]}")
        cpu = json.loads(done.stdout.splitlines()[-1])
        print(f"failure path to the store on memory://, first-generation GC threshold "
              f"{threshold}: ours {cpu['ours']:.1f} µs, raw {cpu['raw']:.1f} µs per failure "
              f"(ours/raw CPU {cpu['ours'] / cpu['raw']:.2f}; {count} failures, median of "
              f"{reps})")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--gc-child"]:
        _gc_child(*(int(value) for value in arguments[1:4]))
    else:
        is_quick = "--quick" in arguments
        main(200 if is_quick else 20_000)
        gc_share(is_quick)
