"""The wire format of the outcome records workers send to ``pipeline.ledger``.

One AMQP message carries a batch from one worker, as compact JSON:

    {"v": 1, "consumer": "billing", "sent_at": 1767225600.123,
     "records": [[id, id_kind, type, replay, retry, delivery,
                  started_at, ended_at, outcome, rung, due_at, error, trace_id], ...]}

Times are Unix seconds (floats); ``ended_at`` and ``outcome`` are null in a
"started" record. Arrays, not objects: a worker encodes one per delivery.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import InvalidMessageError
from pipeline.ledger.facts import AttemptRecord

VERSION = 1
CONTENT_TYPE = "application/vnd.pipeline.ledger-records+json"
FIELDS = 13

Row = list[Any]


def encode_batch(consumer: str, rows: list[Row], sent_at: float) -> bytes:
    """A batch of record rows (see the module docstring) as one message body."""
    return json.dumps(
        {"v": VERSION, "consumer": consumer, "sent_at": sent_at, "records": rows},
        separators=(",", ":"),
    ).encode()


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a time must be Unix seconds, not {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected text, got {value!r}")


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a count, got {value!r}")
    return value


def _record(consumer: str, row: Any) -> AttemptRecord:
    if not isinstance(row, list) or len(row) != FIELDS:
        raise TypeError(f"a record is a list of {FIELDS} fields")
    event_id = _text(row[0])
    started_at = _time(row[6])
    if not event_id or started_at is None:
        raise TypeError("a record needs an event id and a start time")
    return AttemptRecord(
        event_id=event_id, id_kind=_text(row[1]) or "cloudevent", consumer=consumer,
        type=_text(row[2]), replay=_count(row[3]), retry=_count(row[4]),
        delivery=_count(row[5]), started_at=started_at, ended_at=_time(row[7]),
        outcome=_text(row[8]), rung=_text(row[9]), due_at=_time(row[10]),
        error=_text(row[11]), trace_id=_text(row[12]),
    )


def decode_batch(body: bytes) -> tuple[list[AttemptRecord], datetime]:
    """The records of one batch and when it was sent.

    Raises ``InvalidMessageError`` saying what is wrong with a malformed batch.
    """
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise TypeError(f"not a version {VERSION} record batch")
        consumer = data.get("consumer")
        if not isinstance(consumer, str) or not consumer:
            raise TypeError("the batch names no consumer")
        records = [_record(consumer, row) for row in data.get("records") or []]
        sent_at = _time(data.get("sent_at")) or datetime.now(UTC)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidMessageError(f"malformed ledger record batch: {exc}") from None
    return records, sent_at
