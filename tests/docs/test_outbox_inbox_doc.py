"""The FastAPI + SQLAlchemy example of docs/outbox-inbox.md, run as written.

The web service under uvicorn (its lifespan runs the relay), the billing
consumer as a worker, RabbitMQ in the test's vhost, SQLite or PostgreSQL.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import ModuleType

import aio_pika
import pytest
from sqlalchemy import create_engine, func, select, text

from pipeline import envelope
from pipeline.consume.delivery import Outcome
from pipeline.outbox import outbox
from tests.conftest import with_settings
from tests.docs.test_integrations_doc import serving
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import apply_topology, naming

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[2] / "docs" / "outbox-inbox.md"


def load_shop() -> ModuleType:
    match = re.search(r"<!-- example: shop -->\s*```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "docs/outbox-inbox.md has no example named shop"
    module = ModuleType("shop")
    sys.modules["shop"] = module  # as `uvicorn shop:api` would import it
    try:
        exec(compile(match.group(1), f"{DOC}:shop", "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        del sys.modules["shop"]
        raise
    return module


def async_driver(url: str) -> str:
    return url.replace("sqlite:///", "sqlite+aiosqlite:///", 1)


async def test_orders_are_charged_once_each_even_when_an_event_comes_twice(
    settings, connection, database_url, monkeypatch
):
    url = async_driver(database_url)
    for name in list(os.environ):
        if name.startswith("PIPELINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIPELINE_AMQP_URL", settings.amqp_url.get_secret_value())
    monkeypatch.setenv("PIPELINE_OUTBOX_URL", url)
    shop = load_shop()
    try:
        settings = with_settings(settings, outbox_url=url)
        await apply_topology(connection, shop.app.topology(settings.ladder, 20))
        recorder = DeliveryRecorder()
        shop.billing.middlewares = (recorder,)

        async with running(settings, shop.app, shop.billing), serving(shop.api) as client:
            # Two orders placed through HTTP, one refused inside its transaction
            placed = [await client.post("/orders", json={"amount_cents": cents})
                      for cents in (2599, 100)]
            refused = await client.post("/orders", json={"amount_cents": 5_000_000})
            assert [r.status_code for r in placed] == [202, 202], placed[0].text
            assert refused.status_code == 422

            async def charged() -> None:
                assert sum(s.outcome is Outcome.ACKED for s in recorder.seen) == 2

            await eventually(charged, timeout=15)
            # The first order's event is delivered again (as a relay crash would do)
            await publish_again(settings, database_url, placed[0].json()["event_id"])

            async def dropped() -> None:
                assert [s.outcome for s in recorder.seen].count(Outcome.DUPLICATE) == 1

            await eventually(dropped)
        charges = rows(database_url, "SELECT order_id, amount_cents FROM charges")
        orders = rows(database_url, "SELECT id FROM orders")
    finally:
        del sys.modules["shop"]

    # Then each order was charged exactly once, and the refused one left nothing behind
    assert sorted(charges) == sorted(
        (r.json()["order_id"], cents) for r, cents in zip(placed, (2599, 100), strict=True))
    assert sorted(o for (o,) in orders) == sorted(r.json()["order_id"] for r in placed)
    assert count_outbox(database_url) == 2


def rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def count_outbox(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(outbox)).scalar_one())
    finally:
        engine.dispose()


async def publish_again(settings, url: str, event_id: str) -> None:
    """Publish the stored body of ``event_id``'s outbox row once more."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            body = connection.execute(
                select(outbox.c.body).where(outbox.c.event_id == event_id)).scalar_one()
    finally:
        engine.dispose()
    assert envelope.decode(body).id == event_id
    amqp = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with amqp:
        channel = await amqp.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(naming.EVENTS_EXCHANGE)
        await exchange.publish(aio_pika.Message(body, message_id=event_id, delivery_mode=2),
                               "orders.order.placed")
