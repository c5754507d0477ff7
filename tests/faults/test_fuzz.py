"""Scenario 5: 10 000 hypothesis-generated bad (and some good) messages published raw."""

from __future__ import annotations

import asyncio
from collections import Counter

import aio_pika
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from pipeline import headers as h
from pipeline.errors import PublishError, UnroutableError
from pipeline.publish.outbound import ExchangeCache, send_confirmed
from tests.faults.fuzz import SEQ_HEADER, FuzzMessage, fuzz_messages
from tests.faults.harness import Stopwatch, declare, queue_depths
from tests.support.waiting import eventually
from topology import naming

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(400)]

MESSAGES = 10_000
CHUNK = 500
MAX_RSS_GROWTH_KB = 150_000


def generate(count: int) -> list[FuzzMessage]:
    """Draw ``count`` messages in-process (no shrinking: we want volume, not minimal cases)."""
    drawn: list[FuzzMessage] = []

    @hypothesis_settings(max_examples=count, database=None, deadline=None,
                         phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(fuzz_messages())
    def collect(message: FuzzMessage) -> None:
        drawn.append(message)

    while len(drawn) < count:
        collect()
    return drawn[:count]


async def publish_raw(settings, messages: list[FuzzMessage]) -> dict[int, BaseException]:
    """Publish every message with pipelined confirms; return the refused ones by seq."""
    refused: dict[int, BaseException] = {}
    connection = await aio_pika.connect_robust(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchanges = ExchangeCache(channel)
        for start in range(0, len(messages), CHUNK):
            seqs = range(start, min(start + CHUNK, len(messages)))
            outcomes = await asyncio.gather(*(
                send_confirmed(exchanges, naming.EVENTS_EXCHANGE, messages[seq].routing_key,
                               messages[seq].render(seq), settings.confirm_timeout_s)
                for seq in seqs), return_exceptions=True)
            refused.update({seq: outcome for seq, outcome in zip(seqs, outcomes, strict=True)
                            if isinstance(outcome, BaseException)})
    finally:
        await connection.close()
    return refused


async def test_fuzzed_messages_are_handled_dead_lettered_or_refused_and_the_consumer_survives(
    node_settings, ledger, ledger_path, consumers, report
):
    # Given 10 000 generated messages and a running consumer
    clock = Stopwatch()
    messages = generate(MESSAGES)
    generated_s = clock.seconds
    settings = node_settings.model_copy(update={"delivery_limit": 5})
    await declare(settings, ledger_path)
    consumer = await consumers.start(settings, ledger_path, prefetch=50).consuming()
    rss_before = consumer.rss_kb()

    # When they are published raw to pipeline.events
    refused = await publish_raw(settings, messages)
    unclear = {seq: err for seq, err in refused.items() if not isinstance(err, PublishError)}
    assert not unclear, [(messages[s].kind, repr(e)) for s, e in list(unclear.items())[:5]]

    # Then each one is handled, or in the dead-letter store with a reason, or was refused
    stored: dict[int, str] = {}
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        store = await channel.get_queue(naming.DEAD_LETTER_STORE, ensure=True)

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            stored[h.read_int(message.headers, SEQ_HEADER)] = h.dead_letter_reason(
                message.headers)
            await message.ack()

        await store.consume(take)

        async def all_accounted() -> None:
            handled = ledger.counts()
            missing = [seq for seq in range(MESSAGES) if seq not in refused
                       and seq not in stored and not handled.get(f"k5-{seq}")]
            kinds = Counter(messages[seq].kind for seq in missing)
            assert not missing, f"{len(missing)} unaccounted, by kind {dict(kinds)}; " \
                                f"queues {await queue_depths(settings)}; " \
                                f"first: {messages[missing[0]]!r:.500}"

        await eventually(all_accounted, timeout=240, interval=1)
    finally:
        await connection.close()

    # ...and the consumer never died, with its memory bounded.
    assert consumer.alive, consumer.log()[-3000:]
    rss_after = consumer.rss_kb()
    assert rss_after - rss_before < MAX_RSS_GROWTH_KB
    log = consumer.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]
    handled = ledger.counts()
    reasons = Counter(stored.values())
    assert all(reason and reason != "unknown" for reason in reasons), reasons
    duplicated = sum(n - 1 for n in handled.values() if n > 1)
    # Counted, not assumed: published, not refused, and neither handled nor stored.
    lost = sum(1 for seq in range(MESSAGES) if seq not in refused and seq not in stored
               and not handled.get(f"k5-{seq}"))
    report(scenario="5 fuzzed input (hypothesis)",
           load=f"{MESSAGES} raw messages ({generated_s:.0f}s to generate)",
           faults="malformed JSON, wrong types, missing fields, unknown types, huge/deep, "
                  "odd headers/properties, invalid UTF-8",
           lost=lost, duplicated=duplicated, bound=0,
           notes=f"handled {len(handled)}, dead-lettered {len(stored)} {dict(reasons)}, "
                 f"refused at publish {len(refused)}; consumer RSS {rss_before // 1024} -> "
                 f"{rss_after // 1024} MB; {clock.seconds:.0f}s")
    assert lost == 0
    assert duplicated == 0  # no consumer dies and no connection drops: no redelivery


async def test_an_unroutable_event_is_never_reported_confirmed_when_its_id_is_reused(
    node_settings,
):
    # Given two events with the same message id, one routable and one not
    connection = await aio_pika.connect(node_settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.declare_queue("twins", exclusive=True)
        exchanges = ExchangeCache(channel)
        for _ in range(20):
            # When both are published at once (a replay, a duplicate, a foreign publisher)
            lost, delivered = await asyncio.gather(
                send_confirmed(exchanges, "", "nobody-here", aio_pika.Message(
                    b"lost", message_id="twin"), 5),
                send_confirmed(exchanges, "", "twins", aio_pika.Message(
                    b"kept", message_id="twin"), 5),
                return_exceptions=True,
            )
            # Then the unroutable one raises and the routable one is confirmed
            assert isinstance(lost, UnroutableError), lost
            assert delivered is None, delivered
    finally:
        await connection.close()
