"""The AMQP behaviour the pipeline relies on, observed on both brokers.

Each test drives the broker with plain aio-pika (through the pipeline's
connection) and compares what it saw with one expected outcome.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aio_pika import ExchangeType, Message
from aiormq.exceptions import (
    ChannelLockedResource,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)
from aiormq.exceptions import PublishError as Returned

from tests.parity.amqp import open_channel, plain_headers, take_all
from tests.parity.conftest import without_vhost
from tests.support.runtime import open_connection
from tests.support.waiting import eventually
from topology.declare import parse_mismatch

pytestmark = pytest.mark.integration

QUORUM = {"x-queue-type": "quorum"}

ROUTED_KEYS = (
    "orders", "orders.order.placed", "orders.x.placed", "orders.order.cancelled",
    "billing.order.placed", "orders.order.placed.late", "k", "", "a..c",
)


async def test_topic_direct_fanout_and_default_exchanges_route_alike(settings):
    bindings = {
        "all-orders": ("t", "orders.#"), "placed": ("t", "orders.*.placed"),
        "any-order": ("t", "*.order.*"), "hash-in-middle": ("t", "orders.#.placed"),
        "one-word": ("t", "*"), "empty-middle": ("t", "a.*.c"),
        "direct-k": ("d", "k"), "fanned": ("f", "whatever"),
    }
    async with open_channel(settings) as channel:
        exchanges = {
            "t": await channel.declare_exchange("t", ExchangeType.TOPIC, durable=True),
            "d": await channel.declare_exchange("d", ExchangeType.DIRECT, durable=True),
            "f": await channel.declare_exchange("f", ExchangeType.FANOUT, durable=True),
        }
        queues = {}
        for name, (exchange, pattern) in bindings.items():
            queues[name] = await channel.declare_queue(name, durable=True)
            await queues[name].bind(exchanges[exchange], pattern)
        for key in ROUTED_KEYS:
            for label, exchange in exchanges.items():
                await exchange.publish(Message(f"{label}:{key}".encode()), key, mandatory=False)
        await channel.default_exchange.publish(Message(b"default:placed"), "placed")
        seen = {name: sorted(m.body.decode() for m in await take_all(q))
                for name, q in queues.items()}
    assert seen == {
        "all-orders": ["t:orders", "t:orders.order.cancelled", "t:orders.order.placed",
                       "t:orders.order.placed.late", "t:orders.x.placed"],
        "placed": ["default:placed", "t:orders.order.placed", "t:orders.x.placed"],
        "any-order": ["t:billing.order.placed", "t:orders.order.cancelled",
                      "t:orders.order.placed"],
        "hash-in-middle": ["t:orders.order.placed", "t:orders.x.placed"],
        "one-word": ["t:k", "t:orders"],  # not the empty key: it has no word at all
        "empty-middle": ["t:a..c"],
        "direct-k": ["d:k"],
        "fanned": sorted(f"f:{key}" for key in ROUTED_KEYS),
    }


async def test_unroutable_mandatory_publish_is_returned_and_a_missing_exchange_closes_the_channel(
    settings,
):
    async with open_channel(settings) as channel:
        exchange = await channel.declare_exchange("t", ExchangeType.TOPIC, durable=True)
        with pytest.raises(Returned) as returned:
            await exchange.publish(Message(b"x", message_id="m1"), "nobody.listens")
        missing = await channel.get_exchange("no-such-exchange", ensure=False)
        with pytest.raises(ChannelNotFoundEntity) as not_found:
            await missing.publish(Message(b"x", message_id="m2"), "k")
    frame = returned.value.frame
    assert (frame.reply_code, frame.reply_text, frame.routing_key) == (
        312, "NO_ROUTE", "nobody.listens")
    assert without_vhost(str(not_found.value), settings) == (
        "NOT_FOUND - no exchange 'no-such-exchange' in vhost 'VHOST'")


async def test_prefetch_bounds_unacked_deliveries_per_consumer(settings):
    async with open_channel(settings) as channel:
        await channel.set_qos(prefetch_count=2)
        queue = await channel.declare_queue("work", durable=True, arguments=QUORUM)
        for n in range(5):
            await channel.default_exchange.publish(Message(str(n).encode()), "work")
        held: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def hold(message):
            held.append(message)

        await queue.consume(hold)

        async def two_held() -> None:
            assert len(held) == 2

        await eventually(two_held)
        await asyncio.sleep(0.3)  # a third delivery would arrive by now
        counts = [len(held)]
        await held[0].ack()
        await eventually(lambda: _at_least(held, 3))
        await asyncio.sleep(0.3)
        counts.append(len(held))
    assert counts == [2, 3]
    assert [m.body for m in held] == [b"0", b"1", b"2"]


async def _at_least(items: list, count: int) -> None:
    assert len(items) >= count


async def test_requeued_messages_return_to_their_place_marked_redelivered(settings):
    async with open_channel(settings) as channel:
        queue = await channel.declare_queue("classic", durable=True)
        for n in (1, 2, 3):
            await channel.default_exchange.publish(Message(f"m{n}".encode()), "classic")
        first = await queue.get(no_ack=False)
        second = await queue.get(no_ack=False)
        await first.nack(requeue=True)
        again = await queue.get(no_ack=False)
        await second.reject(requeue=True)
        rest = [(m.body, m.redelivered) for m in await take_all(queue)]
        await again.ack()
    assert (first.body, first.redelivered) == (b"m1", False)
    assert (again.body, again.redelivered) == (b"m1", True)
    assert rest == [(b"m2", True), (b"m3", False)]


async def test_rejected_without_requeue_is_dead_lettered_with_x_death(settings):
    async with open_channel(settings) as channel:
        dlx = await channel.declare_exchange("dlx", ExchangeType.FANOUT, durable=True)
        dead = await channel.declare_queue("dead", durable=True)
        await dead.bind(dlx, "")
        queue = await channel.declare_queue(
            "source", durable=True, arguments={"x-dead-letter-exchange": "dlx"})
        await channel.default_exchange.publish(Message(b"x", headers={"mine": "kept"}), "source")
        message = await queue.get(no_ack=False)
        await message.reject(requeue=False)
        [dead_letter] = await eventually(lambda: _messages(dead, 1))
    assert plain_headers(dead_letter) == {
        "mine": "kept",
        "x-death": [{"count": 1, "reason": "rejected", "queue": "source", "exchange": "",
                     "routing-keys": ["source"]}],
        "x-first-death-exchange": "", "x-first-death-queue": "source",
        "x-first-death-reason": "rejected",
    }
    assert (dead_letter.exchange, dead_letter.routing_key) == ("dlx", "source")


async def _messages(queue, count: int) -> list:
    taken = await take_all(queue)
    assert len(taken) == count, taken
    return taken


async def test_queue_ttl_expires_at_the_head_and_dead_letters_to_its_target(settings):
    # Given a retry rung as the pipeline declares one, and its target queue
    async with open_channel(settings) as channel:
        target = await channel.declare_queue("target", durable=True, arguments=QUORUM)
        await channel.declare_queue("rung", durable=True, arguments={
            **QUORUM, "x-message-ttl": 100, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "target", "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
        # When a message with its own, longer expiration waits on the rung
        await channel.default_exchange.publish(
            Message(b"x", headers={"n": 1}, expiration=5), "rung")
        [back] = await eventually(lambda: _messages(target, 1), timeout=5)
    # Then it comes back once the rung's TTL passed, with the broker's death record
    assert (back.exchange, back.routing_key, back.expiration, back.redelivered) == (
        "", "target", None, False)
    assert plain_headers(back) == {
        "n": 1,
        "x-delivery-count": 0,  # a quorum queue's basic.get always says
        "x-death": [{"count": 1, "reason": "expired", "queue": "rung", "exchange": "",
                     "routing-keys": ["rung"], "original-expiration": "5000"}],
        "x-first-death-exchange": "", "x-first-death-queue": "rung",
        "x-first-death-reason": "expired",
    }


async def test_quorum_delivery_limit_dead_letters_after_limit_plus_one_deliveries(settings):
    async with open_channel(settings) as channel:
        dlx = await channel.declare_exchange("dlx", ExchangeType.FANOUT, durable=True)
        dead = await channel.declare_queue("dead", durable=True)
        await dead.bind(dlx, "")
        queue = await channel.declare_queue("poison", durable=True, arguments={
            **QUORUM, "x-delivery-limit": 2, "x-dead-letter-exchange": "dlx",
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
        })
        await channel.default_exchange.publish(Message(b"x"), "poison")
        deliveries = []

        async def crash(message):
            deliveries.append((message.redelivered, (message.headers or {}).get(
                "x-delivery-count")))
            await message.nack(requeue=True)

        await queue.consume(crash)
        [dead_letter] = await eventually(lambda: _messages(dead, 1), timeout=5)
    assert deliveries == [(False, None), (True, 1), (True, 2)]
    deaths = plain_headers(dead_letter)["x-death"]
    assert deaths == [{"count": 1, "reason": "delivery_limit", "queue": "poison",
                       "exchange": "", "routing-keys": ["poison"]}]
    assert "x-delivery-count" not in (dead_letter.headers or {})


async def test_a_full_queue_with_reject_publish_nacks_and_drop_head_dead_letters_the_oldest(
    settings,
):
    async with open_channel(settings) as channel:
        dlx = await channel.declare_exchange("dlx", ExchangeType.FANOUT, durable=True)
        dead = await channel.declare_queue("dead", durable=True)
        await dead.bind(dlx, "")
        # A classic queue: a quorum queue applies its length limit a little late.
        await channel.declare_queue("refusing", durable=True, arguments={
            "x-max-length": 1, "x-overflow": "reject-publish"})
        dropping = await channel.declare_queue("dropping", durable=True, arguments={
            "x-max-length": 1, "x-dead-letter-exchange": "dlx"})
        await channel.default_exchange.publish(Message(b"first"), "refusing")
        with pytest.raises(DeliveryError):
            await channel.default_exchange.publish(Message(b"second"), "refusing")
        for body in (b"old", b"new"):
            await channel.default_exchange.publish(Message(body), "dropping")
        kept = [m.body for m in await take_all(dropping)]
        [dropped] = await eventually(lambda: _messages(dead, 1))
    assert kept == [b"new"]
    assert (dropped.body, plain_headers(dropped)["x-death"][0]["reason"]) == (b"old", "maxlen")


async def test_exclusive_queues_are_locked_to_their_connection_and_passive_declares_check(
    settings,
):
    owner = await open_connection(settings)
    owner_channel = await owner.channel()
    await owner_channel.declare_queue("mine", exclusive=True)
    async with open_channel(settings) as channel:
        with pytest.raises(ChannelLockedResource) as locked:
            await channel.declare_queue("mine", passive=True)
    await owner.close()
    async with open_channel(settings) as channel:
        with pytest.raises(ChannelNotFoundEntity) as gone:
            await channel.declare_queue("mine", passive=True)
    assert without_vhost(str(locked.value), settings).startswith(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost 'VHOST'")
    assert without_vhost(str(gone.value), settings) == (
        "NOT_FOUND - no queue 'mine' in vhost 'VHOST'")


async def test_redeclaring_with_other_arguments_fails_naming_the_argument(settings):
    declared = {**QUORUM, "x-delivery-limit": 20, "x-message-ttl": 1000}
    attempts = {
        "limit": ({**declared, "x-delivery-limit": 10}, True),
        "ttl-dropped": ({**QUORUM, "x-delivery-limit": 20}, True),
        "type-dropped": ({"x-delivery-limit": 20, "x-message-ttl": 1000}, True),
        "non-durable": (declared, False),
        "unknown-argument-added": ({**declared, "x-something-else": 1}, True),
    }
    seen = {}
    async with open_channel(settings) as channel:
        await channel.declare_queue("q", durable=True, arguments=declared)
    for label, (arguments, durable) in attempts.items():
        async with open_channel(settings) as channel:
            try:
                await channel.declare_queue("q", durable=durable, arguments=arguments)
            except ChannelPreconditionFailed as exc:
                mismatch = parse_mismatch("queue", "q", str(exc))
                seen[label] = (mismatch.argument, mismatch.on_broker, mismatch.wanted)
            else:
                seen[label] = "ok"
    assert seen == {
        "limit": ("x-delivery-limit", "20", "10"),
        "ttl-dropped": ("x-message-ttl", "1000", None),
        "type-dropped": ("x-queue-type", "quorum", None),
        "non-durable": ("durable", "true", "false"),
        "unknown-argument-added": "ok",
    }


async def test_closing_a_channel_returns_unacked_deliveries(settings):
    async with open_channel(settings) as channel:
        await channel.declare_queue("q", durable=True, arguments=QUORUM)
        await channel.default_exchange.publish(Message(b"x"), "q")
    async with open_channel(settings) as channel:
        queue = await channel.get_queue("q")
        taken = await queue.get(no_ack=False)
    async with open_channel(settings) as channel:
        queue = await channel.get_queue("q")
        [again] = await eventually(lambda: _messages(queue, 1))
    assert (taken.redelivered, again.redelivered) == (False, True)
    assert (again.headers or {}).get("x-delivery-count") == 1
