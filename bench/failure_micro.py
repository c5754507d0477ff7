"""The failure policy's own work per failure, without a broker: ``python -m bench.failure_micro``.

Not a ``make bench`` case: it prices the two things ours does on a failure
that raw's hand-written path (``bench.raw.RawRetry``) does not, so the failure
path's gap can be read (docs/performance.md):

* ``failure_headers``: the failure bookkeeping (timestamps, origin, the error
  and the traceback, redacted), against raw's two headers;
* pamqp marshalling the copy's content header with those headers, against
  raw's (the same properties, raw's headers).

``--quick``: tiny counts (``make test-bench`` runs it so it cannot rot).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any, cast

from aio_pika import IncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands, frame
from pamqp.header import ContentHeader

from pipeline import PermanentError
from pipeline.consume.delivery import Delivery
from pipeline.consume.failure import failure_headers
from pipeline.settings import PipelineSettings

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


if __name__ == "__main__":
    main(200 if "--quick" in sys.argv[1:] else 20_000)
