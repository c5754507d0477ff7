"""Our side of the peers case: ``Publisher``, ``BlockingPublisher`` and our Worker.

Ours runs as everywhere else in the bench (``bench.harness.our_worker``: as
``run_worker`` builds it), with one difference said out loud: the event ledger
is off (``PIPELINE_LEDGER=false``). No peer has a ledger; its own cost is
measured by the ``ledger`` case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

import aio_pika

from bench.harness import (
    Bench,
    BenchHappened,
    Stopwatch,
    Tally,
    counting_consumer,
    declare,
    fill,
    our_worker,
)
from bench.peers.work import NOTE, OURS_QUEUE, PREFETCH, Send, classic_queue, purge
from bench.raw import raw_channel
from bench.results import Sample
from pipeline import BlockingPublisher, Consumer, Event, PipelineSettings, Publisher, envelope
from pipeline.publish.publisher import build_message
from topology import naming

CONSUMER = "bench-peers"


class PeerEvent(Event):
    """The published event: its own type, so it routes to the classic queue only."""

    event_type: ClassVar[str] = "peers.thing.happened"

    n: int
    note: str


def settings(bench: Bench) -> PipelineSettings:
    return bench.settings(ledger=False)


def _consumer(tally: Tally) -> Consumer:
    return counting_consumer(CONSUMER, tally)


async def setup(bench: Bench) -> None:
    """Our topology, and the classic queue both ours and raw publish to and drain."""
    await declare(bench, [_consumer(Tally(0))], settings(bench))
    async with raw_channel(bench.amqp_url, "bench.peers.setup") as channel:
        await classic_queue(channel, OURS_QUEUE)
        queue = await channel.get_queue(OURS_QUEUE, ensure=False)
        await queue.bind(naming.EVENTS_EXCHANGE, PeerEvent.event_type)


class OursAsync:
    name = "ours"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        async with await Publisher.connect(settings(bench), "bench.peers.ours") as publisher:
            async def send(first: int, size: int) -> None:
                for n in range(first, first + size):
                    await publisher.publish(PeerEvent(n=n, note=NOTE))

            yield send


class OursBlocking:
    """``BlockingPublisher`` from sync code: each publish is a round trip to its loop thread."""

    name = "ours (BlockingPublisher)"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        loop = asyncio.get_running_loop()
        publisher = await loop.run_in_executor(
            None, BlockingPublisher, settings(bench), "bench.peers.blocking")
        try:
            async def send(first: int, size: int) -> None:
                # Called straight from this loop, as sync code would: it blocks it.
                for n in range(first, first + size):
                    publisher.publish(PeerEvent(n=n, note=NOTE))

            yield send
        finally:
            await loop.run_in_executor(None, publisher.close)


def backlog(count: int) -> list[aio_pika.Message]:
    """Our envelopes as the Publisher sends them, carrying the 1 KB note."""
    messages = []
    for n in range(count):
        cloud_event = envelope.wrap(BenchHappened(n=n, note=NOTE), "bench")
        messages.append(build_message(cloud_event, envelope.encode(cloud_event)))
    return messages


class OursConsume:
    name = "ours"

    async def drain(self, bench: Bench, count: int) -> Sample:
        await purge(bench.amqp_url, OURS_QUEUE)
        await fill(bench.amqp_url, OURS_QUEUE, backlog(count))
        tally = Tally(count)
        async with our_worker(settings(bench), _consumer(tally), OURS_QUEUE) as (worker, _):
            clock = Stopwatch()
            await worker.start(PREFETCH)
            await tally.wait(300)
            return clock.sample(count)

