"""A handler that kills its process: the delivery limit ends the crash loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from pipeline import Publisher, store
from pipeline.store import Selection
from pipeline.store.entry import CRASH_LOOP_ERROR
from pipeline.store.replay import replay_headers, replay_target
from tests.apps.crashy import CRASH_EXIT_CODE, app
from tests.conftest import make_settings
from tests.support.events import ThingHappened
from tests.support.runtime import queue_state
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STORE = "pipeline.dead-letter.store"
DELIVERY_LIMIT = 2  # the poison is delivered 3 times, then dead-lettered by the broker


def consumer_env(settings, journal: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_APP="tests.apps.crashy:app",
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        PIPELINE_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
        TEST_JOURNAL=str(journal),
    )
    return env


def handled(journal: Path) -> list[int]:
    if not journal.exists():
        return []
    return sorted(int(line.split()[1]) for line in journal.read_text().splitlines())


async def _crashed_or_done(process: subprocess.Popen[bytes], journal: Path,
                           innocent: tuple[int, ...] = (0, 1, 3, 4, 5)) -> bool:
    """Wait until the process died (False) or handled all innocent events (True)."""

    async def settled() -> None:
        assert process.poll() is not None or handled(journal) == list(innocent)

    await eventually(settled, timeout=30, interval=0.1)
    return process.poll() is None


async def test_a_poison_event_that_kills_the_consumer_ends_in_the_store(broker, vhost, tmp_path):
    settings = make_settings(broker, vhost, delivery_limit=DELIVERY_LIMIT)
    # Given six events, the third of which kills whoever handles it
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        await apply_topology(connection, app.topology(settings.ladder, DELIVERY_LIMIT))
    events = [ThingHappened(n=n, note="poison" if n == 2 else "") for n in range(6)]
    async with await Publisher.connect(settings) as publisher:
        ids = await publisher.publish_many(events)
    journal = tmp_path / "journal"

    # When the consumer is restarted after every crash (as compose or k8s would)
    log = tmp_path / "consumer.log"
    crashes = 0
    process = None
    with log.open("a") as log_file:
        try:
            for _ in range(DELIVERY_LIMIT + 3):  # a few more than needed: fail, not hang
                process = subprocess.Popen(
                    [sys.executable, "-m", "consumers", "crashy"],
                    env=consumer_env(settings, journal), stderr=log_file,
                )
                if await _crashed_or_done(process, journal):
                    break  # everything else is handled and it is still alive
                assert process.returncode == CRASH_EXIT_CODE, log.read_text()[-2000:]
                crashes += 1
            assert process is not None
            assert process.poll() is None, f"still crashing after {crashes} restarts"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-2000:]
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    # Then the poison crashed it limit + 1 times and is in the store as delivery-limit
    assert crashes == DELIVERY_LIMIT + 1
    assert handled(journal) == [0, 1, 3, 4, 5]  # each other event exactly once
    stored, total = await store.list_stored(settings, Selection())
    assert total == 1
    [poison] = stored
    assert poison.message_id == ids[2]
    assert poison.reason == "delivery-limit"
    assert poison.consumer == "crashy"
    assert poison.origin_queue == "pipeline.crashy"
    assert poison.error == CRASH_LOOP_ERROR
    # and a replay would send it back to the crashy queue only, as a fresh start
    headers = replay_headers(poison.headers)
    assert replay_target(poison) == "pipeline.crashy"
    assert headers["pipeline-origin-routing-key"] == "things.thing.happened"
    assert not [k for k in headers if k.startswith("x-")]


async def _died_or_stored(settings, process: subprocess.Popen[bytes]) -> bool:
    """Wait until the process died (False) or the store holds one message (True)."""

    async def settled() -> None:
        assert process.poll() is not None or (await queue_state(settings, STORE))[0] == 1

    await eventually(settled, timeout=30, interval=0.1)
    return process.poll() is None


async def test_a_crash_loop_after_a_retry_is_labelled_delivery_limit_with_its_true_origin(
    broker, vhost, tmp_path
):
    # Given an event that fails transiently once, then kills the consumer on the retry
    # (it reaches the crash loop through a rung: x-first-death-reason is `expired`)
    settings = make_settings(broker, vhost, delivery_limit=DELIVERY_LIMIT)
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        await apply_topology(connection, app.topology(settings.ladder, DELIVERY_LIMIT))
    async with await Publisher.connect(settings) as publisher:
        [late, innocent] = await publisher.publish_many(
            [ThingHappened(n=0, note="poison-after-retry"), ThingHappened(n=1)])
    journal, log = tmp_path / "journal", tmp_path / "consumer.log"
    crashes, process = 0, None
    with log.open("a") as log_file:
        try:
            for _ in range(DELIVERY_LIMIT + 3):
                process = subprocess.Popen([sys.executable, "-m", "consumers", "crashy"],
                                           env=consumer_env(settings, journal), stderr=log_file)
                if await _died_or_stored(settings, process):
                    break
                crashes += 1
            assert process is not None
            assert process.poll() is None, log.read_text()[-2000:]

            async def consuming() -> None:
                assert (await queue_state(settings, "pipeline.crashy"))[1] == 1

            await eventually(consuming, timeout=30)  # its SIGTERM handler is installed
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-2000:]
        finally:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    # Then the store says delivery-limit (not broker-expired) and the consumer queue,
    # not the rung, as on RabbitMQ 3.13+ and 4.x
    [stored], _ = await store.list_stored(settings, Selection())
    assert stored.message_id == late
    assert stored.reason == "delivery-limit"
    assert (stored.consumer, stored.origin_queue) == ("crashy", "pipeline.crashy")
    assert stored.error == CRASH_LOOP_ERROR
    assert replay_target(stored) == "pipeline.crashy"
    assert crashes == DELIVERY_LIMIT + 1
    assert handled(journal) == [1]  # the other event, exactly once
    assert innocent
