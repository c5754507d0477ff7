"""Replay: send dead-lettered events back to the queue of the consumer that failed them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

from pipeline import headers as h
from pipeline import tracing
from pipeline.app import load_app
from pipeline.errors import PublishError
from pipeline.publish.outbound import ExchangeCache, Hop, forward
from pipeline.settings import PipelineSettings
from pipeline.store.entry import StoredMessage, broker_origin
from pipeline.store.scan import scan
from pipeline.store.selection import Selection
from topology import naming

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)


def replay_target(stored: StoredMessage) -> str | None:
    """The queue a message goes back to: the one whose consumer failed on it."""
    return stored.origin_queue


def refusal(target: str | None, consumer_queues: Collection[str]) -> str | None:
    """Why a stored message may not be replayed to ``target``, or None when it may.

    A replay goes only to the queue of a consumer declared in the App: never
    the notifier's queue, the store, a rung or anything else a stored header
    might name (headers are data; docs/dead-letters.md).
    """
    if target is None:
        return "no origin queue recorded; replay it by hand (see docs/dead-letters.md)"
    if target not in consumer_queues:
        return (f"its origin {target!r} is not the queue of a consumer of this App "
                f"({', '.join(sorted(consumer_queues)) or 'none'}), so it is not replayed "
                "and stays in the store")
    return None


def replay_headers(original: dict[str, Any]) -> dict[str, Any]:
    """A fresh start: failure bookkeeping cleared, retries reset, replays counted."""
    headers = h.without_broker_headers(original)
    for name in h.FAILURE_HEADERS:
        headers.pop(name, None)
    headers[h.REPLAY_COUNT] = h.read_int(original, h.REPLAY_COUNT) + 1
    # A crash-loop message was never seen by failure.py: keep where it came from.
    queue, exchange, key = broker_origin(original)
    for name, value in ((h.ORIGIN_QUEUE, queue), (h.ORIGIN_EXCHANGE, exchange),
                        (h.ORIGIN_ROUTING_KEY, key)):
        if value is not None:
            headers.setdefault(name, value)
    return headers


@dataclass
class ReplayReport:
    """What a replay did: every selected message is in exactly one list."""

    replayed: list[StoredMessage] = field(default_factory=list)
    failed: list[tuple[StoredMessage, str]] = field(default_factory=list)
    skipped_dry_run: list[StoredMessage] = field(default_factory=list)


async def replay(
    settings: PipelineSettings,
    selection: Selection,
    dry_run: bool = False,
    rate_per_s: float | None = None,
    progress: Progress | None = None,
    consumers: Collection[str] | None = None,
) -> ReplayReport:
    """Republish the selected messages to their original queues, confirmed, then remove them.

    Each copy goes through the default exchange to the queue of the consumer
    that failed (never the events exchange: other consumers get no
    duplicate). The store copy is acked only after the broker confirmed the
    replayed one; a crash in between leaves both (one duplicate, no loss).
    Only consumers of the App (``consumers``, default: those of
    ``PIPELINE_APP``) are replay targets; any other origin is refused and
    the entry kept. Raises ``BrokerUnreachableError`` / ``ConfigurationError``
    before anything is sent.
    """
    names = load_app(settings.app).consumers if consumers is None else consumers
    consumer_queues = frozenset(naming.consumer_queue(name) for name in names)
    report = ReplayReport()
    async with scan(settings) as found:
        interval = 1.0 / rate_per_s if rate_per_s else 0.0
        started = time.monotonic()
        done = 0
        async for entry in found.entries(selection):
            if dry_run:
                report.skipped_dry_run.append(entry.stored)
                continue
            if interval:
                await asyncio.sleep(max(0.0, started + done * interval - time.monotonic()))
            error = refusal(replay_target(entry.stored), consumer_queues)
            if error is None:
                error = await _replay_one(found.exchanges, entry.stored, entry.message,
                                          settings.confirm_timeout_s)
            else:
                log.error("replay of %s refused: %s", entry.stored.message_id, error)
            if error is None:
                # The replay is confirmed: the store copy may go.
                entry.settled = True
                report.replayed.append(entry.stored)
            else:
                report.failed.append((entry.stored, error))
            done += 1
            if progress:
                # The store's size is known, not how many of it are selected.
                progress(done, max(done, found.total))
    return report


async def _replay_one(
    exchanges: ExchangeCache, stored: StoredMessage, message: AbstractIncomingMessage,
    timeout_s: float,
) -> str | None:
    target = replay_target(stored) or ""
    headers = replay_headers(stored.headers)
    attributes = {
        "pipeline.recoverability.action": "replay",
        "pipeline.replay.count": headers[h.REPLAY_COUNT],
        "pipeline.dead_letter.reason": stored.reason,
    }
    # A replay is a new unit of work: a new trace, linked to the failed one.
    hop = Hop("replay", target, "", target, attributes,
              links=tracing.link_to(stored.headers), new_trace=True)
    if not _holds(message):
        # The connection dropped mid-replay (and may have come back): this
        # delivery can no longer be acked, and the broker already put it back
        # in the store. Sending a copy now would leave it in both places.
        log.error("replay of %s stopped: the store's channel closed mid-replay; it is back "
                  "in the store, replay it again", stored.message_id)
        return "the connection to the store dropped mid-replay: not replayed, it is back in " \
               "the store"
    try:
        # The pass acks the store copy when its page ends (entry.settled); if
        # the connection drops first, acknowledge() says the entry is in both.
        await forward(exchanges, message, hop, headers, timeout_s, naming.DEAD_LETTER_STORE,
                      then_ack=False)
    except PublishError as exc:
        log.error("replay of %s to %s failed: %s; it stays in the store",
                  stored.message_id, target, exc)
        return str(exc)
    log.info("replayed %s event %s to %s (replay #%d)", stored.event_type, stored.message_id,
             target, headers[h.REPLAY_COUNT])
    return None


def _holds(message: AbstractIncomingMessage) -> bool:
    """True while the store delivery can still be acked (its channel is open)."""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


