"""`pipeline topology migrate` retires rungs named before positions were added.

An earlier version named a consumer's rungs ``pipeline.<consumer>.retry.<label>``;
they sorted 1s, 30m, 30s, 5m, 5s in the management UI. Now they are
``pipeline.<consumer>.retry.<NN>.<label>``. A pipeline upgraded with retries
waiting in the old rungs: the migration declares the new rungs, lets the old
ones drain into the consumer's queue on their own (their TTL and dead-letter
arguments did not change) and deletes each once it is empty; a dry run
changes nothing; every waiting retry is handled, as a retry.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

import aio_pika
import pytest

from pipeline import App, Consumer, Context, PipelineSettings
from pipeline import headers as h
from pipeline.commands.topology import load_topology
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.ops.drift import find_drift
from tests.conftest import with_settings
from tests.support.events import ThingHappened
from tests.support.runtime import ready_or_none, running
from tests.support.store import cli_env, run_cli
from tests.support.waiting import eventually
from topology import Topology, naming

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONSUMER = "upgraded"
consumer = Consumer(CONSUMER, ["things.#"])
handled: list[tuple[int, int]] = []  # (event n, attempt)


@consumer.handler
async def handle(event: ThingHappened, context: Context) -> None:
    handled.append((event.n, context.attempt))


app = App([consumer])
APP = f"{__name__}:app"
# The old deployment's ladder: a short rung, drained before the migration
# runs, and a long one still holding its retries when it runs.
OLD_LADDER = "100ms,15s"
SHORT, LONG = (f"{naming.retry_prefix(CONSUMER)}{label}" for label in ("100ms", "15s"))


def _as_before(topology: Topology) -> Topology:
    """``topology`` as an earlier version declared it: rungs without their position."""
    queues = []
    for queue in topology.queues:
        rung = naming.parse_retry_queue(queue.name)
        if rung is not None:
            queue = replace(queue, name=naming.retry_prefix(rung.consumer) + rung.label)
        queues.append(queue)
    return Topology(topology.exchanges, tuple(queues), topology.bindings)


def _waiting_retry(n: int) -> aio_pika.Message:
    """A retry copy as failure.py sends it to a rung: the event, our count of 1."""
    body = {"specversion": "1.0", "id": f"evt-{n}", "source": "test", "type":
            ThingHappened.event_type, "time": datetime.now(UTC).isoformat(),
            "data": {"n": n}}
    return aio_pika.Message(
        json.dumps(body).encode(), message_id=f"evt-{n}", type=ThingHappened.event_type,
        content_type="application/cloudevents+json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={h.RETRY_COUNT: 1, h.ORIGIN_QUEUE: naming.consumer_queue(CONSUMER)})


async def test_old_named_rungs_drain_into_their_consumer_and_are_deleted_once_empty(
    settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    handled.clear()
    settings = with_settings(settings, app=APP)
    topology = load_topology(settings)
    new_rungs = [q.name for q in topology.queues if q.role == "retry"]
    assert new_rungs == [naming.retry_queue(CONSUMER, n, label)
                         for n, label in enumerate(["100ms", "200ms", "300ms"], 1)]
    # Given a pipeline an earlier version declared, with retries waiting in two rungs
    old = _as_before(load_topology(with_settings(settings, retry_delays=OLD_LADDER)))
    connection = await connect(settings, "test.old-rungs")
    try:
        await declare_topology(connection, old)
        channel = await connection.channel(publisher_confirms=True)
        await asyncio.gather(*(channel.default_exchange.publish(_waiting_retry(n), SHORT)
                               for n in range(10)))
        await asyncio.gather(*(channel.default_exchange.publish(_waiting_retry(n), LONG)
                               for n in range(10, 30)))
    finally:
        await connection.close()
    for name, value in {**cli_env(settings), "PIPELINE_APP": APP}.items():
        monkeypatch.setenv(name, value)

    # `topology check` reports the old rungs as retired (and the new ones as missing)
    drifts = await find_drift(settings, topology)
    assert {d.name for d in drifts if d.source == "retired"} == {SHORT, LONG}
    assert {d.name for d in drifts if d.source == "missing" and d.kind == "queue"} == set(
        new_rungs)

    # A dry run says what it would do and changes nothing
    assert await run_cli(["topology", "migrate", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{LONG}: 20 messages, TTL 15000 ms; wait: drains into pipeline.upgraded by" in out
    assert await ready_or_none(settings, LONG) == 20
    assert [await ready_or_none(settings, name) for name in new_rungs] == [None] * 3

    # When it runs while the long rung still holds its retries
    async def short_drained() -> None:
        assert await ready_or_none(settings, SHORT) == 0

    await eventually(short_drained, timeout=10)
    assert await run_cli(["topology", "migrate"]) == 4  # something left to retire
    out = capsys.readouterr().out
    assert f"{LONG} still holds 20 messages" in out
    # Then the new rungs exist, the empty old one is gone, the other is left to drain
    assert [await ready_or_none(settings, name) for name in new_rungs] == [0] * 3
    assert await ready_or_none(settings, SHORT) is None
    assert await ready_or_none(settings, LONG) == 20

    # And run again with --wait: it waits for the long rung to drain, then deletes it
    assert await run_cli(["topology", "migrate", "--wait"]) == 0
    assert "1 retired rung(s) deleted" in capsys.readouterr().out
    assert await ready_or_none(settings, LONG) is None
    assert not [d for d in await find_drift(settings, topology)
                if d.kind == "queue" and d.name.startswith(naming.retry_prefix(CONSUMER))]

    # Every waiting retry came back to its consumer's queue and is handled, as a retry
    assert await ready_or_none(settings, naming.consumer_queue(CONSUMER)) == 30
    async with running(settings, app, consumer):
        async def all_handled() -> None:
            assert len(handled) >= 30

        await eventually(all_handled, timeout=30)
    assert sorted(handled) == [(n, 2) for n in range(30)]
