"""A worker's services stop when told to, whenever the stop lands (real broker).

On Python 3.11 ``asyncio.wait_for`` returns normally when a cancellation lands
just as the wait it guards finishes: the ledger recorder's loop, woken by a
full batch at that moment, went on forever and the worker's stop hung (a
benchmark run showed it). Its waits use ``asyncio.timeout`` now.
"""

from __future__ import annotations

import asyncio

import pytest

from pipeline import App, Consumer, Publisher
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.ledger.recorder import LedgerRecorder
from tests.conftest import with_settings
from tests.support.events import ThingHappened
from topology import apply_topology, naming

pytestmark = pytest.mark.integration

# Loop turns between the recorder's wake-up and the stop: the lost cancellation
# needs the stop between the wait's end and the loop resuming (one turn on 3.11).
TURNS = range(6)


async def _settled(delivery: Delivery) -> Outcome:
    return Outcome.ACKED


@pytest.mark.parametrize("turns", TURNS)
async def test_the_ledger_recorder_stops_when_the_stop_lands_as_a_batch_wakes_it(
    settings, connection, tmp_path, turns
):
    settings = with_settings(settings, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                             ledger_batch=1, ledger_flush_ms=60_000)
    billing = Consumer("billing", patterns=["things.#"])
    await apply_topology(connection, App([billing]).topology(settings.ladder,
                                                              settings.delivery_limit))
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1))
    channel = await connection.channel()
    queue = await channel.get_queue(naming.consumer_queue("billing"), ensure=False)
    message = await queue.get(timeout=10)
    recorder = LedgerRecorder("billing", settings)
    await recorder.start(connection)

    await recorder(Delivery(message, "billing", queue.name), _settled)  # wakes it
    for _ in range(turns):
        await asyncio.sleep(0)
    try:
        async with asyncio.timeout(10):
            await recorder.stop()
    except TimeoutError:
        pytest.fail(f"the recorder's stop hung ({turns} loop turns after its wake-up)")
    await message.ack()
    # The ledger queue holds the published event and, sent by the stop at the
    # latest, the delivery's record (a quorum queue with a single active consumer:
    # counted, not read).
    ledger_queue = await channel.declare_queue(naming.LEDGER_QUEUE, passive=True)
    assert ledger_queue.declaration_result.message_count == 2, "the record was not sent"
