"""Dramatiq (``RabbitmqBroker``, on pika's blocking client) in the peers case.

Same guarantees: ``RabbitmqBroker(confirm_delivery=True)`` waits for the
broker's confirm in every ``send`` and, only then, publishes ``mandatory``
(``dramatiq/brokers/rabbitmq.py``); its messages are persistent
(``delivery_mode=2``). Its worker acks a message after the actor returned
(``post_process_message``). The worker runs in a child process of its own, as
``dramatiq`` runs it, with its default 8 threads and ``queue_prefetch`` set to
100 (its default would be 2 per thread), so 100 deliveries are unacked at most,
as for ours. Default middleware; messages go through the default exchange to
the actor's queue.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.harness import Bench, fill
from bench.peers.work import (
    DRAMATIQ_QUEUE,
    NOTE,
    PREFETCH,
    Send,
    counting_handler,
    drain_in_child,
    purge,
)
from bench.results import Sample

ACTOR = "bench_peers_handle"
THREADS = 8


def _actor(broker: RabbitmqBroker, handle: Any) -> dramatiq.Actor[Any, Any]:
    return dramatiq.actor(handle, actor_name=ACTOR, queue_name=DRAMATIQ_QUEUE, broker=broker)


def _broker(url: str) -> RabbitmqBroker:
    return RabbitmqBroker(url=url, confirm_delivery=True)


def _ignore(n: int, note: str) -> None:
    """The actor as the publishing side knows it (it never runs there)."""


class DramatiqPublish:
    name = "Dramatiq"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        broker = _broker(bench.amqp_url)
        actor = _actor(broker, _ignore)
        try:
            async def send(first: int, size: int) -> None:
                # A blocking client, called as sync code calls it (it blocks this loop).
                for n in range(first, first + size):
                    actor.send(n, NOTE)

            yield send
        finally:
            broker.close()


def _message(n: int) -> aio_pika.Message:
    body = dramatiq.Message(queue_name=DRAMATIQ_QUEUE, actor_name=ACTOR, args=(n, NOTE),
                            kwargs={}, options={}).encode()
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


class DramatiqConsume:
    name = "Dramatiq"

    async def drain(self, bench: Bench, count: int) -> Sample:
        # The queue exists: DramatiqPublish declared it as Dramatiq does (with its
        # dead-letter arguments) when the run warmed up.
        await purge(bench.amqp_url, DRAMATIQ_QUEUE)
        await fill(bench.amqp_url, DRAMATIQ_QUEUE, [_message(n) for n in range(count)])
        return await drain_in_child("bench.peers.dramatiq_peer", bench.amqp_url, count)


def _work(url: str, count: int) -> None:
    """The child: a Dramatiq worker on the backlog until ``count`` actors ran."""
    import threading

    from dramatiq import Worker

    handle = counting_handler(count)
    broker = _broker(url)
    _actor(broker, handle)
    worker = Worker(broker, worker_threads=THREADS)
    worker.queue_prefetch = PREFETCH
    worker.start()
    threading.Event().wait()  # until the parent, having read the result, kills it


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    _work(sys.argv[1], int(sys.argv[2]))
