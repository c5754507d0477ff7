"""The dead-letter store is read page by page and every entry is reached, in order.

The store is a quorum queue. Holding it unacked in one consumer stops at the
prefetch (65 535 at most), so a store of 100 000 showed only its first
65 535. A pass now opens one consumer per page and returns what it read in
store order. The fast tests use a small page; the 100 000-message test is
marked ``volume`` (``make test-volume``, not part of ``make test``).
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Iterable

import aio_pika
import pytest

from pipeline import App, Consumer, PipelineSettings
from pipeline.connection import connect
from pipeline.declare import declare_topology
from pipeline.store import Selection, list_stored, purge
from topology import naming

pytestmark = pytest.mark.integration

# The module, not the function ``pipeline.store.scan`` that shadows it on the package.
scan_module = importlib.import_module("pipeline.store.scan")


async def _declare_and_fill(settings: PipelineSettings, ids: Iterable[str]) -> int:
    app = App([Consumer("paging", ["paging.#"])])
    connection = await connect(settings, "test.fill")
    count = 0
    try:
        await declare_topology(connection, app.topology(settings.ladder, 20, ledger=False))
        channel = await connection.channel(publisher_confirms=True)
        batch: list[asyncio.Future[object]] = []
        for message_id in ids:
            # Small messages as a foreign producer would leave them: no pipeline headers.
            body = b'{"n": "' + message_id.encode() + b'"}'
            batch.append(asyncio.ensure_future(channel.default_exchange.publish(
                aio_pika.Message(body, message_id=message_id, type="paging.thing.failed"),
                naming.DEAD_LETTER_STORE,
            )))
            count += 1
            if len(batch) >= 1000:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    finally:
        await connection.close()
    return count


def _ids(count: int) -> list[str]:
    return [f"m{n:06d}" for n in range(count)]


async def _order(settings: PipelineSettings) -> list[str]:
    shown, _ = await list_stored(settings, Selection(), limit=10**6)
    return [stored.message_id for stored in shown]


async def test_a_listing_reaches_past_the_first_page_and_leaves_the_store_in_order(
    settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store three and a half pages long
    monkeypatch.setattr(scan_module, "PAGE", 40)
    ids = _ids(140)
    await _declare_and_fill(settings, ids)

    # When it is listed twice, the last entry is shown and the order holds
    shown, total = await list_stored(settings, Selection(ids=frozenset({ids[-1]})))
    assert total == 140
    assert [s.message_id for s in shown] == [ids[-1]]
    for _ in range(2):
        order = await _order(settings)
        assert order == ids, [(n, i) for n, i in enumerate(order) if ids[n] != i][:5]


async def test_a_purge_deep_in_the_store_removes_only_the_selection_and_keeps_the_order(
    settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_module, "PAGE", 40)
    ids = _ids(130)
    await _declare_and_fill(settings, ids)
    gone = {ids[5], ids[77], ids[129]}  # first page, a middle page, the last entry

    purged = await purge(settings, Selection(ids=frozenset(gone)))

    assert {s.message_id for s in purged} == gone
    assert await _order(settings) == [i for i in ids if i not in gone]


@pytest.mark.volume
@pytest.mark.timeout(1200)
async def test_every_entry_of_a_store_of_100_000_is_reached_and_kept(
    settings: PipelineSettings,
) -> None:
    ids = _ids(100_000)
    await _declare_and_fill(settings, ids)
    started = time.monotonic()

    shown, total = await list_stored(settings, Selection(ids=frozenset({ids[-1], ids[70_000]})))

    elapsed = time.monotonic() - started
    assert total == 100_000
    assert [s.message_id for s in shown] == [ids[70_000], ids[-1]]
    print(f"one pass over 100000 stored messages: {elapsed:.1f}s")
    order = await _order(settings)
    assert len(order) == 100_000
    assert order == ids
