"""Scenarios 11-13: the failure path itself under faults, handlers failing on purpose.

Each one ends by reading every queue of the vhost (``drain_everything``):
nothing may be left ready or unacked in a consumer queue or rung, and every
event is handled or in the store with its true reason. Lost and duplicated
are counted from the ledger and from the store, never assumed.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pipeline import Publisher
from pipeline import headers as h
from tests.faults.harness import (
    QUEUE,
    Stopwatch,
    declare,
    drain_everything,
    key_of,
    publish_all,
    queue_depths,
)
from tests.support.waiting import eventually
from topology import naming

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

TRANSIENT = h.DeadLetterReason.RETRIES_EXHAUSTED.value
PERMANENT = h.DeadLetterReason.PERMANENT_ERROR.value


def expected_reason(key: str) -> str | None:
    """Where an event of the scenarios belongs: None means handled."""
    if key.startswith("fail-"):
        return TRANSIENT
    if key.startswith("perm-"):
        return PERMANENT
    return None


class Account:
    """Handled (ledger) and stored (store, taken as it fills) per key, and what is left."""

    def __init__(self, ledger, keys: list[str]) -> None:
        self.ledger, self.keys = ledger, keys
        self.stored: Counter[str] = Counter()
        self.reasons: dict[str, set[str]] = {}
        self.elsewhere: dict[str, tuple[int, int]] = {}

    async def take(self, settings) -> None:
        drained = await drain_everything(settings)
        for message in drained.store:
            key = key_of(message)
            self.stored[key] += 1
            self.reasons.setdefault(key, set()).add(h.dead_letter_reason(message.headers))
        self.elsewhere = drained.elsewhere

    def misplaced(self) -> list[str]:
        handled = self.ledger.counts()
        wrong = []
        for key in self.keys:
            reason = expected_reason(key)
            stored_right = reason is not None and self.reasons.get(key) == {reason}
            if not stored_right and not (reason is None and handled[key]):
                wrong.append(key)
        return wrong

    @property
    def lost(self) -> int:
        handled = self.ledger.counts()
        return sum(1 for key in self.keys if not handled[key] and not self.stored[key])

    @property
    def duplicated(self) -> int:
        """Extra handlings of events that belong handled, plus extra store entries."""
        handled = self.ledger.counts()
        extra_handled = sum(handled[k] - 1 for k in self.keys
                            if expected_reason(k) is None and handled[k] > 1)
        extra_stored = sum(n - 1 for n in self.stored.values() if n > 1)
        return extra_handled + extra_stored

    async def settled(self, settings) -> None:
        await self.take(settings)
        wrong = self.misplaced()
        assert not wrong, f"{len(wrong)} not where they belong, e.g. {wrong[:3]}; " \
                          f"left {self.elsewhere}"
        assert not self.elsewhere, self.elsewhere


async def test_consumer_killed_between_the_confirmed_retry_copy_and_the_ack(
    node_settings, ledger, ledger_path, consumers, tmp_path, report
):
    # Given events that fail once and then succeed, and a consumer that dies right
    # after a retry copy is confirmed, before it acks the original (3 times)
    kills, prefetch = 3, 1
    countdown = tmp_path / "kills-left"
    countdown.write_text(str(kills))
    await declare(node_settings, ledger_path)
    keys = [f"once-{i}" for i in range(10)] + [f"ok-{i}" for i in range(40)]
    knobs = {"prefetch": prefetch, "fail_once_prefix": "once-",
             "kill_after_copy": countdown}
    clock = Stopwatch()
    async with await Publisher.connect(node_settings) as publisher:
        published = await publish_all(publisher, keys)
    assert not published.raised
    # When a supervisor restarts it each time it dies
    crashes = 0
    consumer = consumers.start(node_settings, ledger_path, **knobs)
    account = Account(ledger, keys)
    try:
        async def settled() -> None:
            nonlocal consumer, crashes
            if not consumer.alive:
                crashes += 1
                consumer = consumers.start(node_settings, ledger_path, **knobs)
            await account.settled(node_settings)

        await eventually(settled, timeout=120, interval=0.5)
    finally:
        consumer.kill9()
    # Then every event was handled, none lost; each kill left one copy on the rung and
    # the original in the queue, so each costs at most one duplicate handling.
    bound = kills * prefetch
    report(scenario="11 consumer kill -9 between retry copy and ack",
           load=f"{len(keys)} events, 10 failing once, prefetch {prefetch}",
           faults=f"{crashes} x SIGKILL after the copy's confirm, before the ack",
           lost=account.lost, duplicated=account.duplicated, bound=bound,
           notes=f"restarted {crashes}x; nothing left in a queue or rung; "
                 f"{clock.seconds:.0f}s")
    assert crashes == kills
    assert account.lost == 0
    assert account.duplicated <= bound


async def test_broker_killed_while_hundreds_sit_on_rungs_and_in_the_store(
    node, node_settings, ledger, ledger_path, consumers, report
):
    # Given a one-rung ladder long enough to hold its copies through a broker restart,
    # hundreds of copies on the rung and hundreds of entries in the store
    count, prefetch = 200, 20
    settings = node_settings.model_copy(update={"retry_delays": "20s"})
    rung = naming.retry_queue("ledger", 1, settings.ladder[0].label)
    await declare(settings, ledger_path)
    consumer = await consumers.start(settings, ledger_path, prefetch=prefetch,
                                     fail_prefix="fail-", permanent_prefix="perm-").consuming()
    keys = [f"fail-{i}" for i in range(count)] + [f"perm-{i}" for i in range(count)]
    clock = Stopwatch()
    async with await Publisher.connect(settings) as publisher:
        published = await publish_all(publisher, keys)
    assert not published.raised

    async def parked() -> None:
        depths = await queue_depths(settings)
        assert depths.get(rung, (0, 0))[0] == count, depths
        assert depths.get(naming.DEAD_LETTER_STORE, (0, 0))[0] == count, depths
        assert QUEUE not in depths, depths

    await eventually(parked, timeout=60, interval=0.5)
    # When the node is killed -9 and restarted on the same data
    await asyncio.to_thread(node.kill9)
    await asyncio.to_thread(node.restart)
    # Then nothing on the rung or in the store was lost: the rung's copies come back,
    # fail again and join the store; the consumer reconnected by itself
    account = Account(ledger, keys)
    await eventually(lambda: account.settled(settings), timeout=120, interval=1)
    assert consumer.alive, consumer.log()[-2000:]
    bound = prefetch  # one kill: what was in flight may be redelivered
    report(scenario="12 broker kill -9 with copies on a rung and in the store",
           load=f"{count} transient failures on a 20 s rung + {count} permanent in the store",
           faults="1 x kill -9 of the node, restart on the same data",
           lost=account.lost, duplicated=account.duplicated, bound=bound,
           notes=f"store {sum(account.stored.values())} entries after the restart; "
                 f"nothing left in a queue or rung; {clock.seconds:.0f}s")
    assert account.lost == 0
    assert account.duplicated <= bound


async def test_connections_force_closed_while_failures_are_copied(
    node, node_settings, ledger, ledger_path, consumers, report
):
    # Given a steady stream where a third fails transiently and a third permanently
    closes, prefetch = 5, 10
    await declare(node_settings, ledger_path)
    consumer = await consumers.start(node_settings, ledger_path, prefetch=prefetch,
                                     fail_prefix="fail-", permanent_prefix="perm-").consuming()
    keys: list[str] = []
    clock = Stopwatch()
    async with await Publisher.connect(node_settings) as publisher:
        async def publish_steadily() -> None:
            for tick in range(40):
                batch = [f"ok-{tick}", f"fail-{tick}", f"perm-{tick}"]
                result = await publish_all(publisher, batch)
                keys.extend(result.confirmed)
                await asyncio.sleep(0.25)

        # When every connection is force-closed 5 times while failures are being copied
        async def close_connections() -> None:
            for _ in range(closes):
                await asyncio.sleep(1.5)
                await asyncio.to_thread(node.ctl, "close_all_connections", "--global",
                                        "fault test: closing every connection")

        await asyncio.gather(publish_steadily(), close_connections(),
                             return_exceptions=False)
    # Then the consumer recovered by itself and every confirmed event is where it belongs
    account = Account(ledger, keys)
    await eventually(lambda: account.settled(node_settings), timeout=120, interval=1)
    assert consumer.alive, consumer.log()[-2000:]
    bound = prefetch * closes  # each close may redeliver what was in flight
    report(scenario="13 connections force-closed while failures are copied",
           load=f"{len(keys)} confirmed events, 1/3 transient and 1/3 permanent failures",
           faults=f"{closes} x close_all_connections",
           lost=account.lost, duplicated=account.duplicated, bound=bound,
           notes=f"store {sum(account.stored.values())} entries; nothing left in a queue "
                 f"or rung; {clock.seconds:.0f}s")
    assert account.lost == 0
    assert account.duplicated <= bound
