"""The outbox relay as a process: kill -9, restarts, two relays, `pipeline outbox status`."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from pipeline import App, Consumer
from pipeline.outbox import Outbox, create_outbox_table, outbox
from tests.conftest import with_settings
from tests.support.children import child_env, children
from tests.support.events import ThingHappened
from tests.support.runtime import drain, queue_state
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.e2e

QUEUE = "pipeline.things"


@pytest.fixture
async def relay_settings(settings, database_url, connection):
    consumer = Consumer("things", ["things.#"])
    await apply_topology(connection, App([consumer]).topology(settings.ladder, 20))
    engine = create_engine(database_url)
    create_outbox_table(engine)
    engine.dispose()
    return with_settings(settings, outbox_url=database_url, outbox_batch=20,
                         outbox_lease_s=3.0, outbox_poll_s=0.5)


def commit(settings, count: int, per_transaction: int = 10) -> list[str]:
    """Commit ``count`` outbox rows, ``per_transaction`` at a time; their event ids."""
    writer, ids = Outbox(settings), []
    engine = create_engine(settings.outbox_url.get_secret_value())
    try:
        for start in range(0, count, per_transaction):
            with Session(engine) as session, session.begin():
                ids += [writer.add(session, ThingHappened(n=n))
                        for n in range(start, min(start + per_transaction, count))]
    finally:
        engine.dispose()
    return ids


def unsent(settings) -> int:
    engine = create_engine(settings.outbox_url.get_secret_value())
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())
    finally:
        engine.dispose()


async def published(settings, expect: int) -> Counter[str]:
    """Every message in the queue, by event id (waits until ``expect`` arrived)."""
    return Counter(m.message_id for m in await drain(settings, QUEUE, expect=expect, timeout=60))


async def test_rows_committed_while_the_relay_is_dead_go_out_exactly_once_after_restart(
    relay_settings, tmp_path
):
    env = child_env(relay_settings)
    with children(tmp_path) as started:
        relay = started.start(env, "outbox-relay")
        await relay.logged("publishing from")
        relay.kill9()  # Given the relay died

        ids = commit(relay_settings, 50)  # When the app commits events meanwhile
        await asyncio.sleep(1)
        assert (await queue_state(relay_settings, QUEUE))[0] == 0  # nothing went out

        restarted = started.start(env, "outbox-relay")  # and the relay comes back
        counts = await published(relay_settings, expect=50)
        await asyncio.sleep(1)  # time for a duplicate to show, if one were coming
        counts += Counter(m.message_id for m in await drain(relay_settings, QUEUE))
        assert await restarted.stop() == 0

    # Then every committed event was published exactly once, and marked sent
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert unsent(relay_settings) == 0
    assert "stopped after publishing 50 events" in restarted.log()


async def test_a_relay_killed_mid_stream_publishes_everything_repeating_at_most_one_batch(
    relay_settings, tmp_path
):
    env = child_env(relay_settings)
    ids = commit(relay_settings, 400, per_transaction=50)
    with children(tmp_path) as started:
        relay = started.start(env, "outbox-relay")

        async def some_out() -> None:
            ready, _ = await queue_state(relay_settings, QUEUE)
            assert ready >= 60

        await eventually(some_out, timeout=30, interval=0.01)
        relay.kill9()  # mid-stream: maybe between a batch's confirms and its mark
        started.start(env, "outbox-relay")
        counts = await published(relay_settings, expect=400)

        async def all_sent() -> None:  # the dead relay's lease (3 s) runs out first
            assert unsent(relay_settings) == 0

        await eventually(all_sent, timeout=30, interval=0.2)
        await asyncio.sleep(0.5)
        counts += Counter(m.message_id for m in await drain(relay_settings, QUEUE))

    assert set(counts) == set(ids)  # nothing lost
    repeated = sum(n - 1 for n in counts.values())
    assert repeated <= relay_settings.outbox_batch, repeated


async def test_two_relays_share_the_work_and_never_publish_a_row_twice(relay_settings, tmp_path):
    env = child_env(relay_settings)
    with children(tmp_path) as started:
        relays = [started.start(env, "outbox-relay") for _ in range(2)]
        for relay in relays:
            await relay.logged("publishing from")
        # Commits keep coming while both relays run.
        ids = await asyncio.to_thread(commit, relay_settings, 600, 5)
        counts = await published(relay_settings, expect=600)
        await asyncio.sleep(1)
        counts += Counter(m.message_id for m in await drain(relay_settings, QUEUE))
        codes = [await relay.stop() for relay in relays]

    assert codes == [0, 0]
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1][:5]
    shares = [int(relay.log().rsplit("stopped after publishing ", 1)[1].split()[0])
              for relay in relays]
    assert sum(shares) == 600, shares


def outbox_command(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(settings)
    return subprocess.run([sys.executable, "-m", "pipeline", "outbox", *args], env=env,
                          capture_output=True, text=True, timeout=60)


async def test_outbox_status_shows_pending_rows_and_their_age(relay_settings):
    empty = outbox_command(relay_settings, "status", "--json")
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["pending"] == 0

    commit(relay_settings, 3)
    await asyncio.sleep(1.2)
    stale = outbox_command(relay_settings, "status", "--max-age", "1s")
    assert stale.returncode == 6, stale.stderr
    assert re.match(r"pending 3 \(oldest \d+\.\d+ s\), failing 0", stale.stdout), stale.stdout
    fresh = outbox_command(relay_settings, "status", "--json", "--max-age", "1h")
    assert fresh.returncode == 0
    assert json.loads(fresh.stdout)["oldest_pending_age_s"] >= 1.0


def test_the_relay_without_a_database_says_what_to_set(settings):
    env = child_env(settings)
    env.pop("PIPELINE_OUTBOX_URL", None)
    result = subprocess.run([sys.executable, "-m", "consumers", "outbox-relay"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PIPELINE_OUTBOX_URL is not set" in result.stderr
