"""Declaring the topology: idempotent, and a clear error when the broker disagrees."""

from __future__ import annotations

import pytest

from pipeline import App, Consumer, Publisher
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state
from topology import RetryLadder, TopologyMismatchError, apply_topology

pytestmark = pytest.mark.integration


def app() -> App:
    return App([Consumer("things", ["things.#"])])


async def test_applying_twice_is_a_no_op_that_keeps_messages(settings, connection):
    topology = app().topology(settings.ladder, settings.delivery_limit)
    await apply_topology(connection, topology)
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ThingHappened(n=1))

    await apply_topology(connection, topology)

    assert (await queue_state(settings, "pipeline.things"))[0] == 1


async def test_a_mismatch_names_object_argument_both_values_and_the_fix(settings, connection):
    await apply_topology(connection, app().topology(settings.ladder, delivery_limit=20))

    with pytest.raises(TopologyMismatchError) as raised:
        await apply_topology(connection, app().topology(settings.ladder, delivery_limit=5))

    [mismatch, *_] = raised.value.mismatches
    assert mismatch.name == "pipeline.things"
    assert mismatch.argument == "x-delivery-limit"
    assert mismatch.on_broker == "20"
    assert mismatch.wanted == "5"
    message = str(raised.value)
    assert "pipeline.things" in message
    assert "x-delivery-limit=20" in message
    assert "x-delivery-limit=5" in message
    assert "pipeline topology apply" in message


async def test_a_new_ladder_adds_rungs_instead_of_colliding(settings, connection):
    await apply_topology(connection, app().topology(RetryLadder.parse("1s,5s"), 20))
    await apply_topology(connection, app().topology(RetryLadder.parse("2s,5s"), 20))

    for rung in ("01.1s", "02.5s", "01.2s"):
        await queue_state(settings, f"pipeline.things.retry.{rung}")
