"""A three-node cluster: the node leading a consumer's queue is killed -9 under load.

Publishers and a consumer process get all three nodes in PIPELINE_AMQP_URL.
The queue's leader node dies: its replicas elect a new leader, the consumer
and the publisher move to a surviving node, nothing confirmed is lost, and
`status` names the node that is down. Marked ``cluster`` (``make test-cluster``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from pipeline import Publisher
from pipeline.ops.status import read_status
from tests.apps.faults_ledger import CONSUMER
from tests.conftest import settings_for
from tests.faults.cluster import Cluster, quorum_status, three_node_cluster
from tests.faults.harness import PublishResult, build, declare, non_publish_errors, publish_keys
from tests.faults.ledger import Ledger, Tally
from tests.support.waiting import eventually
from topology import naming

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(480)]

BATCH = 25
BEFORE = 1_000  # confirmed events before the kill
AFTER = 1_000  # confirmed events after it
DUPLICATE_BOUND = 200  # the consumer's prefetch window (20) many times over; reported


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with three_node_cluster() as nodes:
        yield nodes


async def test_killing_the_leader_of_a_consumer_queue_loses_nothing_and_everyone_follows(
    cluster: Cluster, ledger, ledger_path, consumers, report, caplog
):
    caplog.set_level(logging.WARNING, logger="pipeline.connection_watch")
    caplog.set_level(logging.WARNING, logger="pipeline.publish.outbound")
    vhost = "cluster-leader-killed"
    queue = await _declared(cluster, vhost, ledger_path)

    # Given every replicated queue on three nodes, and a publisher and a consumer
    # connected to the node that leads the consumer's queue (listed first)
    listed = await _replicated_on_three(cluster, vhost, queue)
    leader = cluster.by_name(listed["leader"])
    order = [leader, *(n for n in cluster.nodes if n is not leader)]
    settings = settings_for(",".join(f"{n.url}{vhost}" for n in order),
                            management_url=",".join(n.management_url for n in order),
                            reconnect_interval_s=0.5, confirm_timeout_s=10.0,
                            connect_timeout_s=30.0, app=None)
    consumer = await consumers.start(settings, ledger_path, prefetch=20).consuming()

    published = PublishResult()
    stop = asyncio.Event()

    async def publish_steadily(publisher: Publisher) -> None:
        batch = 0
        while not stop.is_set():
            result = await publish_keys(publisher, [f"c-{batch:05d}-{i:02d}" for i in range(BATCH)])
            published.add(result)
            batch += 1
            await asyncio.sleep(0.02 if result.confirmed else 0.25)

    async def confirmed(at_least: int) -> None:
        assert len(published.confirmed) >= at_least

    async with await Publisher.connect(settings) as publisher:
        publishing = asyncio.create_task(publish_steadily(publisher))
        try:
            await eventually(lambda: confirmed(BEFORE), timeout=120)
            # When the node leading the consumer's queue is killed -9
            await asyncio.to_thread(leader.kill9)
            killed_at, started = len(published.confirmed), time.monotonic()
            await eventually(lambda: confirmed(killed_at + AFTER), timeout=120, interval=0.2)
            resumed_s = time.monotonic() - started
        finally:
            stop.set()
            await publishing

    # Then every confirmed event is handled: the consumer followed the new leader
    tally = await _all_handled(ledger, published)
    assert consumer.alive
    # ...the publisher said it lost the dead node and came back on another one
    ours = [r.getMessage() for r in caplog.records if r.name == "pipeline.connection_watch"]
    assert any(" lost (" in line and f":{leader.amqp_port} " in line for line in ours), ours
    assert any("restored" in line for line in ours), ours
    # ...and status names the node that is down and the queues missing a member
    status = await read_status(settings, build(ledger_path).topology(settings.ladder, 20))
    codes = {(p.code, p.queue) for p in status.problems}
    assert ("node-down", leader.node) in codes
    assert ("replicas-offline", queue) in codes
    assert not any(code == "majority-lost" for code, _ in codes)
    report(scenario="cluster: leader node of the consumer queue killed -9",
           load=f"{len(published.confirmed)} confirmed", faults="1 node of 3",
           lost=tally.lost, duplicated=tally.duplicated, bound=DUPLICATE_BOUND,
           notes=f"{AFTER} more confirmed {resumed_s:.1f}s after the kill; "
                 f"{len(published.raised)} publishes raised meanwhile (nacked or cut off), "
                 f"{_fresh_channels(caplog)} fresh publisher channel(s) after a nack")


def _fresh_channels(caplog: pytest.LogCaptureFixture) -> int:
    """How often a sender moved to a fresh channel after a nack (RabbitMQ 3.10's stuck
    channel: pipeline/publish/outbound.py, ExchangeCache.renew_after_nack)."""
    return sum(1 for r in caplog.records
               if r.name == "pipeline.publish.outbound" and "fresh channel" in r.getMessage())


async def _declared(cluster: Cluster, vhost: str, ledger_path: Path) -> str:
    """A vhost of ``vhost`` with the ledger app's topology declared; its consumer queue."""
    with cluster.api() as api:
        api.put(f"/vhosts/{vhost}").raise_for_status()
        api.put(f"/permissions/{vhost}/guest",
                json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    setup = settings_for(cluster.amqp_url_for(vhost), management_url=cluster.management_url,
                         app=None)
    await declare(setup, ledger_path)
    return naming.consumer_queue(CONSUMER)


async def _all_handled(ledger: Ledger, published: PublishResult) -> Tally:
    """Wait until the consumer's ledger has every confirmed event; the tally, duplicates bounded."""
    assert not non_publish_errors(published), list(non_publish_errors(published).items())[:3]

    async def none_lost() -> None:
        assert ledger.tally(published.confirmed).lost == 0

    await eventually(none_lost, timeout=120, interval=0.5)
    tally = ledger.tally(published.confirmed)
    assert tally.duplicated <= DUPLICATE_BOUND
    return tally


async def _replicated_on_three(cluster: Cluster, vhost: str, queue: str) -> dict:
    async def listed() -> dict:
        with cluster.api() as api:
            found = api.get(f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}").json()
        assert len(found.get("members") or []) == 3
        assert len(found.get("online") or []) == 3
        return found

    return await eventually(listed, timeout=60, interval=0.5)


async def _publish_until(publisher: Publisher, published: PublishResult, prefix: str,
                         at_least: int) -> None:
    """Publish batches of ``BATCH`` until ``at_least`` more events were confirmed."""
    target, batch = len(published.confirmed) + at_least, 0
    while len(published.confirmed) < target:
        keys = [f"{prefix}-{len(published.confirmed):06d}-{batch:04d}-{i:02d}"
                for i in range(BATCH)]
        result = await publish_keys(publisher, keys)
        published.add(result)
        batch += 1
        if not result.confirmed:
            await asyncio.sleep(0.25)


async def test_a_restarted_node_catches_up_and_status_returns_clean(
    cluster: Cluster, ledger, ledger_path, consumers, report
):
    cluster.restart_stopped()  # the node the test before killed, if it ran
    vhost = "cluster-node-restarted"
    queue = await _declared(cluster, vhost, ledger_path)
    listed = await _replicated_on_three(cluster, vhost, queue)
    victim = cluster.by_name(listed["leader"])
    order = [n for n in cluster.nodes if n is not victim] + [victim]
    settings = settings_for(",".join(f"{n.url}{vhost}" for n in order),
                            management_url=",".join(n.management_url for n in order),
                            reconnect_interval_s=0.5, confirm_timeout_s=10.0,
                            connect_timeout_s=30.0, app=None)
    topology = build(ledger_path).topology(settings.ladder, 20)
    published = PublishResult()

    # Given events waiting in the consumer's queue on three nodes, and its leader's
    # node killed -9 while more are published (they reach the two other members only)
    async with await Publisher.connect(settings) as publisher:
        await _publish_until(publisher, published, "r", BEFORE)
        await asyncio.to_thread(victim.kill9)
        await _publish_until(publisher, published, "r", AFTER)
    down = {(p.code, p.queue) for p in (await read_status(settings, topology)).problems}
    assert ("node-down", victim.node) in down
    assert ("replicas-offline", queue) in down

    # When the node is started again on its data
    started = time.monotonic()
    await asyncio.to_thread(victim.restart)

    # Then its member of the queue catches up with the leader's log...
    survivor = order[0]

    async def caught_up() -> dict:
        members = await asyncio.to_thread(quorum_status, survivor, queue, vhost)
        assert set(members) == {n.node for n in cluster.nodes}
        assert len({m["Commit Index"] for m in members.values()}) == 1, members
        assert len({m["Last Log Index"] for m in members.values()}
                   if "Last Log Index" in next(iter(members.values()))
                   else {m["Log Index"] for m in members.values()}) == 1, members
        return members

    await eventually(caught_up, timeout=90, interval=1)
    caught_up_s = time.monotonic() - started

    # ...`status` reports no node down and no member missing...
    async def clean() -> None:
        report_ = await read_status(settings, topology)
        cluster_problems = [p for p in report_.problems
                            if p.code in ("node-down", "majority-lost", "replicas-offline",
                                          "replicas-missing")]
        assert cluster_problems == []

    await eventually(clean, timeout=60, interval=1)

    # ...and everything confirmed, before and during the outage, is delivered
    consumer = await consumers.start(settings, ledger_path, prefetch=20).consuming()
    tally = await _all_handled(ledger, published)
    assert consumer.alive

    async def nothing_flagged() -> None:
        # (the ledger queue of the test app has no consumer here: it is not run)
        problems = (await read_status(settings, topology)).problems
        assert [p for p in problems if p.queue != naming.LEDGER_QUEUE] == []

    await eventually(nothing_flagged, timeout=60, interval=1)
    report(scenario="cluster: the killed node restarted", load=f"{len(published.confirmed)} "
           f"confirmed ({AFTER} while it was down)", faults="1 node of 3, restarted",
           lost=tally.lost, duplicated=tally.duplicated, bound=DUPLICATE_BOUND,
           notes=f"its member caught up {caught_up_s:.1f}s after the restart began")


async def test_two_nodes_down_publishers_get_no_false_confirm_and_all_is_delivered_after(
    cluster: Cluster, ledger, ledger_path, consumers, report
):
    cluster.restart_stopped()
    vhost = "cluster-majority-lost"
    queue = await _declared(cluster, vhost, ledger_path)
    await _replicated_on_three(cluster, vhost, queue)
    survivor, *victims = cluster.nodes
    settings = settings_for(f"{survivor.url}{vhost}", management_url=survivor.management_url,
                            reconnect_interval_s=0.5, confirm_timeout_s=3.0,
                            connect_timeout_s=30.0, app=None)
    topology = build(ledger_path).topology(settings.ladder, 20)
    published = PublishResult()

    async with await Publisher.connect(settings) as publisher:
        await _publish_until(publisher, published, "m", BEFORE)
        confirmed_before = len(published.confirmed)

        # When two of the three nodes are killed -9: no queue has a majority
        for node in victims:
            await asyncio.to_thread(node.kill9)
        codes = {(p.code, p.queue) for p in (await read_status(settings, topology)).problems}
        assert ("majority-lost", queue) in codes

        # Then a publish is not confirmed: it raises our PublishError, saying why
        outage = PublishResult()
        for batch in range(4):
            outage.add(await publish_keys(
                publisher, [f"m-outage-{batch}-{i:02d}" for i in range(BATCH)]))
        published.add(outage)
        assert outage.raised, "a publish was confirmed with no majority for its queue"
        assert not non_publish_errors(outage), list(non_publish_errors(outage).items())[:3]
        said = str(next(iter(outage.raised.values())))
        assert said

        # When both nodes return, publishing is confirmed again
        for node in victims:
            await asyncio.to_thread(node.restart)
        await _replicated_on_three(cluster, vhost, queue)
        await _publish_until(publisher, published, "m", AFTER)

    # Then everything confirmed, before, during and after, is delivered
    consumer = await consumers.start(settings, ledger_path, prefetch=20).consuming()
    tally = await _all_handled(ledger, published)
    assert consumer.alive
    report(scenario="cluster: two of three nodes killed -9, then restarted",
           load=f"{len(published.confirmed)} confirmed ({confirmed_before} before)",
           faults="2 nodes of 3", lost=tally.lost, duplicated=tally.duplicated,
           bound=DUPLICATE_BOUND,
           notes=f"{len(outage.raised)} of {4 * BATCH} publishes during the outage raised "
                 f"({len(outage.confirmed)} confirmed): {said[:120]}")
