"""A failed delivery is freed when it is settled, not left to the garbage collector.

Its error's traceback holds the worker frame that holds the delivery, which held
the error: every failure left such a cycle (the delivery, its message, envelope,
event, the exception, traceback and frames) for the cyclic collector, whose extra
passes made the failure path slower than raw aio-pika's (docs/performance.md).
The worker drops the error once every layer has read it. Runs on memory://: this
is the worker's own bookkeeping, no broker behaviour is involved.
"""

from __future__ import annotations

import gc

from pipeline import App, Consumer, PermanentError, Publisher
from pipeline.consume.delivery import Delivery
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually
from topology import naming

FAILURES = 50


async def test_a_dead_lettered_delivery_leaves_no_reference_cycle_behind(settings):
    consumer = Consumer("things", ["things.#"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        raise PermanentError("refused")

    gc.collect()
    gc.disable()  # keep whatever cycles the failures make until we look
    try:
        async with running(settings, App([consumer]), consumer):
            async with await Publisher.connect(settings) as publisher:
                await publisher.publish_many([ThingHappened(n=n) for n in range(FAILURES)])

            async def all_stored() -> None:
                ready, _ = await queue_state(settings, naming.DEAD_LETTER_STORE)
                assert ready == FAILURES

            await eventually(all_stored)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = sum(isinstance(thing, Delivery) for thing in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == 0, f"{left} of {FAILURES} failed deliveries were freed only by the collector"
