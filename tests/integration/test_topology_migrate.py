"""`pipeline topology migrate`: the classic store of an older version becomes the quorum store.

10 000 stored dead letters, a migration killed with SIGKILL in the middle of
moving them, the command run again: every message is in the new store, in
its order except within the page in flight at the kill (a message copied but
not acked when the process died shows up twice, and RabbitMQ puts the
unacked messages of that page back "in their original position if possible":
a classic queue on 3.10 was seen putting the already-copied part behind the
rest), and the broker matches the declared topology.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace

import aio_pika
import pytest

from pipeline import PipelineSettings
from pipeline.commands.topology import load_topology
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.ops import migration
from pipeline.ops.drift import find_drift
from pipeline.store import Selection, list_stored
from tests.support.runtime import ready_or_none
from tests.support.store import cli_env
from tests.support.waiting import eventually
from topology import Topology, naming

# Part of `make test-volume` (about a minute here), not of `make test`.
# A generous timeout: the volume suite runs minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.volume, pytest.mark.timeout(400)]

COUNT = 10_000
HOLDING = naming.migration_queue(naming.DEAD_LETTER_STORE)


def _as_before(topology: Topology) -> Topology:
    """The topology as an earlier version declared it: the store a classic queue."""
    queues = tuple(
        replace(q, arguments={"x-queue-type": "classic"})
        if q.name == naming.DEAD_LETTER_STORE else q
        for q in topology.queues
    )
    return Topology(topology.exchanges, queues, topology.bindings)


async def _old_store_with(settings: PipelineSettings, ids: list[str]) -> None:
    connection = await connect(settings, "test.old-store")
    try:
        await declare_topology(connection, _as_before(load_topology(settings)))
        channel = await connection.channel(publisher_confirms=True)
        for start in range(0, len(ids), 1000):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(b"{}", message_id=i, type="things.thing.failed",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    naming.DEAD_LETTER_STORE)
                for i in ids[start:start + 1000]))
    finally:
        await connection.close()


def _migrate(settings: PipelineSettings, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **cli_env(settings)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "topology", "migrate", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _out_of_place(order: list[str], ids: list[str]) -> list[int]:
    """Positions where the first copies of ``order`` differ from ``ids``."""
    first = list(dict.fromkeys(order))
    return [n for n, (got, want) in enumerate(zip(first, ids, strict=True)) if got != want]


def _repeats(order: list[str]) -> list[int]:
    """Positions in ``order`` of a message seen earlier."""
    seen: set[str] = set()
    repeated = []
    for n, message_id in enumerate(order):
        if message_id in seen:
            repeated.append(n)
        seen.add(message_id)
    return repeated


async def test_a_migration_killed_midway_and_run_again_loses_and_reorders_nothing(
    settings: PipelineSettings,
) -> None:
    # Given 10 000 dead letters in the classic store of an earlier version
    ids = [f"dl-{n:05d}" for n in range(COUNT)]
    await _old_store_with(settings, ids)

    # A dry run says what would move and moves nothing
    dry = _migrate(settings, "--dry-run")
    out, _ = dry.communicate(timeout=60)
    assert dry.returncode == 0, out
    assert naming.DEAD_LETTER_STORE in out
    assert "classic -> quorum" in out
    assert await ready_or_none(settings, HOLDING) is None
    assert await ready_or_none(settings, naming.DEAD_LETTER_STORE) == COUNT

    # When the migration is killed once some thousands have moved
    first = _migrate(settings)

    async def midway() -> None:
        assert first.poll() is None, "the migration finished before it could be killed"
        held = await ready_or_none(settings, HOLDING)
        assert held is not None
        assert held >= 2000

    await eventually(midway, timeout=60, interval=0.1)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert 0 < (await ready_or_none(settings, HOLDING) or 0) < COUNT + migration.PAGE

    # And run again to the end
    second = _migrate(settings)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out

    # Then the quorum store holds every message, in order but for one page; no holding queue
    assert await ready_or_none(settings, HOLDING) is None
    shown, total = await list_stored(settings, Selection(), limit=COUNT * 2)
    order = [s.message_id for s in shown]
    assert sorted(set(order)) == ids  # none lost
    # The page in flight at the kill (its copied part moved twice) is the only
    # place where the order may differ: everything else is where it was.
    assert total - COUNT <= migration.PAGE
    moved = _out_of_place(order, ids)
    assert not moved or moved[-1] - moved[0] < migration.PAGE, (moved[0], moved[-1])
    repeated = _repeats(order)
    assert not repeated or repeated[-1] - repeated[0] < 2 * migration.PAGE, repeated[:3]
    drifts = [d for d in await find_drift(settings, load_topology(settings))
              if d.name == naming.DEAD_LETTER_STORE]
    assert drifts == []
