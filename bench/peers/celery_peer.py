"""Celery (RabbitMQ through ``pyamqp``) in the peers case.

Same guarantees: ``broker_transport_options={"confirm_publish": True}`` makes
every ``apply_async`` wait for the broker's confirm, and Celery's messages are
persistent by default (``task_default_delivery_mode``). Its publish has no
``mandatory`` flag: an unroutable task is dropped by the broker silently
(ours and the other peers would raise). ``task_acks_late=True`` acks a task
after it returned. The worker runs in a child process of its own with the
``threads`` pool of 4 threads and ``worker_prefetch_multiplier=25``: Celery's
prefetch is concurrency x multiplier, so 100 deliveries are unacked at most,
as for ours. (The default prefork pool would need a counter shared between
processes; on 2 cores its 2 processes would not be faster than 4 threads for a
handler that does nothing.) No result backend; the worker logs at WARNING, so
nothing per task; no mingle, gossip or heartbeat events.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from celery import Celery

from bench.harness import Bench
from bench.peers.work import (
    CELERY_QUEUE,
    NOTE,
    PREFETCH,
    Send,
    counting_handler,
    drain_in_child,
    purge,
    wait_depth,
)
from bench.results import Sample

TASK = "bench.peers.handle"
THREADS = 4


def _app(amqp_url: str, confirm: bool = True) -> Celery:
    app = Celery("bench_peers", broker="py" + amqp_url)
    app.conf.update(
        broker_transport_options={"confirm_publish": confirm},
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_default_queue=CELERY_QUEUE,
        task_ignore_result=True,
        worker_prefetch_multiplier=PREFETCH // THREADS,
        worker_hijack_root_logger=False,
    )
    return app


def _task(app: Celery, handle: Callable[..., None]) -> Any:
    return app.task(name=TASK, acks_late=True)(handle)


def _ignore(n: int, note: str) -> None:
    """The task as the publishing side knows it (it never runs there)."""


class CeleryPublish:
    name = "Celery"

    @contextlib.asynccontextmanager
    async def open(self, bench: Bench) -> AsyncIterator[Send]:
        app = _app(bench.amqp_url)
        task = _task(app, _ignore)
        try:
            with app.producer_or_acquire() as producer:
                async def send(first: int, size: int) -> None:
                    # A blocking client, called as sync code calls it (it blocks this loop).
                    for n in range(first, first + size):
                        task.apply_async((n, NOTE), producer=producer)

                yield send
        finally:
            app.close()


class CeleryConsume:
    name = "Celery"

    async def drain(self, bench: Bench, count: int) -> Sample:
        await purge(bench.amqp_url, CELERY_QUEUE)
        # Filled by Celery itself (its message format is its own), without confirms
        # to go faster; the worker starts once all of them are in the queue.
        app = _app(bench.amqp_url, confirm=False)
        task = _task(app, _ignore)
        try:
            with app.producer_or_acquire() as producer:
                for n in range(count):
                    task.apply_async((n, NOTE), producer=producer)
        finally:
            app.close()
        await wait_depth(bench.amqp_url, CELERY_QUEUE, count)
        return await drain_in_child("bench.peers.celery_peer", bench.amqp_url, count)


def _work(amqp_url: str, count: int) -> None:
    """The child: a Celery worker on the backlog until ``count`` tasks ran."""
    handle = counting_handler(count)
    app = _app(amqp_url)
    _task(app, handle)
    app.Worker(pool="threads", concurrency=THREADS, loglevel="WARNING", quiet=True,
               without_mingle=True, without_gossip=True, without_heartbeat=True,
               redirect_stdouts=False).start()


if __name__ == "__main__":
    _work(sys.argv[1], int(sys.argv[2]))
