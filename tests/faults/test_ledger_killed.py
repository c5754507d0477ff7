"""The ledger process killed with SIGKILL in the middle of its batches loses no record."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from pipeline import Publisher
from pipeline.connection import connect
from pipeline.ledger.model import State
from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.schema import engine_for
from tests.apps.ledgered import ThingHappened, app
from tests.faults.harness import (
    ROOT,
    ConsumerFactory,
    ConsumerProcess,
    _die_with_parent,
    settings_env,
)
from tests.support.waiting import eventually
from topology import apply_topology, naming

pytestmark = pytest.mark.faults

EVENTS = 3000


async def test_a_ledger_killed_mid_batch_catches_up_with_every_event_once(
        node_settings, consumers, tmp_path):
    # Given the ledger running alone (no billing worker: every event stays pending)
    settings = node_settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_batch": 200,
    })
    connection = await connect(settings, "faults.setup")
    try:
        await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    finally:
        await connection.close()
    first = await start_ledger(consumers, settings)
    query = LedgerQuery(engine_for(settings.ledger_url))

    # When events stream in and the ledger is killed while it writes them
    async with await Publisher.connect(settings) as publisher:
        publishing = asyncio.create_task(publisher.publish_many(
            ThingHappened(n=n) for n in range(EVENTS)))

        async def some_written() -> None:
            progress = query.progress(naming.LEDGER)
            assert progress is not None
            assert progress.records_total > 0

        await eventually(some_written, timeout=30)
        first.kill9()
        ids = await publishing
    written_before_restart = sum(query.counts().values())

    # Then a new ledger process catches up, and every event is there once, pending
    await start_ledger(consumers, settings)

    async def all_written() -> None:
        counts = query.counts()
        assert counts[State.PENDING] == EVENTS, counts

    await eventually(all_written, timeout=60)
    assert 0 < written_before_restart < EVENTS
    assert sum(query.counts().values()) == EVENTS
    for event_id in (ids[0], ids[EVENTS // 2], ids[-1]):
        status = query.status(event_id)
        assert status is not None
        assert status.consumers["billing"].state is State.PENDING


async def start_ledger(factory: ConsumerFactory, settings) -> ConsumerProcess:
    """``python -m consumers ledger`` of tests.apps.ledgered, killed with the test's others."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update(settings_env(settings))
    env.update({
        "PIPELINE_APP": "tests.apps.ledgered:app", "PYTHONPATH": str(ROOT),
        "PIPELINE_LEDGER_URL": settings.ledger_url, "PIPELINE_LEDGER_BATCH": "200",
        "PIPELINE_LEDGER_FLUSH_MS": "50", "OTEL_SDK_DISABLED": "true",
    })
    log_path = factory.directory / f"ledger-{len(factory.processes) + 1}.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            [sys.executable, "-m", "consumers", "ledger"], cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    process = ConsumerProcess(popen, log_path, naming.LEDGER_QUEUE)
    factory.processes.append(process)
    return await process.consuming()
