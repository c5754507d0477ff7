"""`pipeline topology migrate`: the classic store of an older version becomes the quorum store.

10 000 stored dead letters, a migration killed with SIGKILL in the middle of
moving them, the command run again: every message is in the new store, in
its order (a message copied but not acked when the process died shows up
twice: the page in flight at the kill is repeated once), and the broker matches the
declared topology.
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
from tests.support.store import cli_env
from tests.support.waiting import eventually
from topology import Topology, naming

# Part of `make test-volume` (about a minute here), not of `make test`.
pytestmark = [pytest.mark.integration, pytest.mark.volume]

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


async def _depth(settings: PipelineSettings, name: str) -> int | None:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        return queue.declaration_result.message_count or 0


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs in ``positions`` as (start, length)."""
    runs: list[tuple[int, int]] = []
    for n in positions:
        if runs and runs[-1][0] + runs[-1][1] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


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
    assert await _depth(settings, HOLDING) is None
    assert await _depth(settings, naming.DEAD_LETTER_STORE) == COUNT

    # When the migration is killed once some thousands have moved
    first = _migrate(settings)

    async def midway() -> None:
        assert first.poll() is None, "the migration finished before it could be killed"
        held = await _depth(settings, HOLDING)
        assert held is not None
        assert held >= 2000

    await eventually(midway, timeout=60, interval=0.1)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert 0 < (await _depth(settings, HOLDING) or 0) < COUNT + migration.PAGE

    # And run again to the end
    second = _migrate(settings)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out

    # Then the quorum store holds every message in order, the holding queue is gone
    assert await _depth(settings, HOLDING) is None
    shown, total = await list_stored(settings, Selection(), limit=COUNT * 2)
    order = [s.message_id for s in shown]
    assert list(dict.fromkeys(order)) == ids  # each message where it was, none lost
    # The page confirmed but not acked at the kill was moved again: one run of repeats.
    assert total - COUNT <= migration.PAGE
    seen: set[str] = set()
    repeated = []
    for n, message_id in enumerate(order):
        if message_id in seen:
            repeated.append(n)
        seen.add(message_id)
    runs = _runs(repeated)
    where = ", ".join(f"{order[s]}..{order[s + n - 1]} at {s}" for s, n in runs[:5])
    assert len(runs) <= 1, f"repeats in {len(runs)} runs: {where}"
    drifts = [d for d in await find_drift(settings, load_topology(settings))
              if d.name == naming.DEAD_LETTER_STORE]
    assert drifts == []
