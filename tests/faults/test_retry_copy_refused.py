"""Scenario 7: the retry copy cannot be stored (rung missing, or full with reject-publish)."""

from __future__ import annotations

import logging
from urllib.parse import quote

import aio_pika
import pytest

from pipeline import Publisher
from pipeline import headers as h
from tests.apps.faults_ledger import CONSUMER, build
from tests.faults.harness import (
    QUEUE,
    Stopwatch,
    declare,
    publish_all,
    queue_depths,
    take_dead_letters,
)
from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import naming

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(120)]

EVENTS = 20
RUNG = naming.retry_queue(CONSUMER, "100ms")  # the first rung of the test ladder
POLICY = "faults-rung-full"


async def break_rung(how: str, node, settings) -> None:
    if how == "missing":
        connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(RUNG)
        return
    # full: a policy caps every rung at 0 messages and refuses new ones
    vhost = quote(settings.vhost, safe="")
    with node.endpoint.api() as api:
        api.put(f"/policies/{vhost}/{POLICY}", json={
            "pattern": r"^pipeline\.ledger\.retry\.", "apply-to": "queues",
            "definition": {"max-length": 0, "overflow": "reject-publish"},
        }).raise_for_status()

        async def applied() -> None:
            rungs = [q for q in api.get(f"/queues/{vhost}").json() if ".retry." in q["name"]]
            assert rungs, "no rungs"
            assert all(q.get("policy") == POLICY for q in rungs), rungs

        await eventually(applied, timeout=15, interval=0.2)


async def repair_rung(how: str, node, settings, ledger_path) -> None:
    if how == "missing":
        await declare(settings, ledger_path)  # `pipeline topology apply` does the same
    else:
        with node.endpoint.api() as api:
            api.delete(f"/policies/{quote(settings.vhost, safe='')}/{POLICY}").raise_for_status()


def key_of(message) -> str:
    return message.body.split(b'"key":"', 1)[-1].split(b'"', 1)[0].decode()


@pytest.mark.parametrize("how", ["missing", "full"])
async def test_a_retry_copy_the_broker_cannot_store_leaves_the_original_unacked_and_kept(
    node, node_settings, ledger, ledger_path, tmp_path, caplog, report, how
):
    # Given a consumer whose handler fails, and a first rung that cannot take the copy
    caplog.set_level(logging.ERROR, logger="pipeline.consume.failure")
    flag = tmp_path / "downstream-down"
    flag.touch()
    app = build(ledger_path, fail_flag=flag)
    await declare(node_settings, ledger_path)
    clock = Stopwatch()
    async with running(node_settings, app, app.consumer(CONSUMER)):
        await break_rung(how, node, node_settings)
        async with await Publisher.connect(node_settings) as publisher:
            published = await publish_all(publisher, [f"k7-{how}-{i}" for i in range(EVENTS)])
        assert not published.raised

        # When every handling fails and the retry copy is refused
        async def copies_refused() -> None:
            refused = [r for r in caplog.records if "could not store the retry copy" in
                       r.getMessage()]
            assert len(refused) >= EVENTS, f"{len(refused)} refusals logged"

        await eventually(copies_refused, timeout=30)

        # Then no original was acked without a stored copy: each event is in its queue
        # (nacked back), or in a rung or the store (a copy that was accepted), never gone.
        async def none_gone() -> None:
            depths = await queue_depths(node_settings)
            where = {name: sum(n) for name, n in depths.items() if name == QUEUE
                     or ".retry." in name or name == naming.DEAD_LETTER_STORE}
            assert sum(where.values()) == EVENTS, depths
            if how == "missing":  # nothing can leave the queue at all
                assert where.get(QUEUE) == EVENTS, depths

        await eventually(none_gone, timeout=10)
        assert ledger.count() == 0

        # ...and once the rung is back and the handler recovers, each one is handled
        # (or, if it ran out of retries while failing, kept in the store).
        await repair_rung(how, node, node_settings, ledger_path)
        flag.unlink()
        stored: dict[str, str] = {}

        async def all_settled() -> None:
            stored.update({key_of(m): h.dead_letter_reason(m.headers)
                           for m in await take_dead_letters(node_settings)})
            handled = ledger.counts()
            missing = [k for k in published.confirmed if not handled[k] and k not in stored]
            assert not missing, f"{len(missing)} neither handled nor stored"

        await eventually(all_settled, timeout=30, interval=0.2)
    tally = ledger.tally(published.confirmed)
    report(scenario=f"7 retry copy refused (rung {how})", load=f"{EVENTS} failing events",
           faults="first rung deleted" if how == "missing" else
           "max-length 0 + reject-publish policy on the rungs",
           lost=0, duplicated=tally.duplicated,
           notes=f"originals nacked back until the rung was repaired; dead-lettered "
                 f"{len(stored)} {set(stored.values()) or ''}; {clock.seconds:.0f}s")
    assert tally.duplicated == 0
    if how == "missing":
        assert not stored
    assert set(stored.values()) <= {h.DeadLetterReason.RETRIES_EXHAUSTED.value}
