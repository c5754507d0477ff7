"""What every side of the peers case does: the same work, the same event, one vhost.

The work is fixed here so that no side gets an easier version of it: a 1 KB
event (``NOTE``: 1000 characters besides the number), persistent, published
with a publisher confirm awaited per event; and a backlog consumed at 100
unacked deliveries, each acked only after its handler returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from aio_pika.abc import AbstractChannel

from bench.harness import Bench
from bench.raw import raw_channel
from bench.results import Sample

PREFETCH = 100
NOTE = ("a 1 KB benchmark event: " * 42)[:1000]

# Each side publishes to and consumes from its own classic durable queue, so
# no side's confirms wait for another's copies (ours and raw go through the
# pipeline.events topic exchange, as they do in production; the peers through
# the exchange each uses by default).
OURS_QUEUE = "bench.peers.ours"
FASTSTREAM_QUEUE = "bench.peers.faststream"
DRAMATIQ_QUEUE = "bench.peers.dramatiq"
CELERY_QUEUE = "bench.peers.celery"

# publish(first, size): publish events first..first+size-1, each awaited.
Send = Callable[[int, int], Awaitable[None]]


class PublishSide(Protocol):
    """A connected publisher of one library, for one rep."""

    name: str

    def open(self, bench: Bench) -> contextlib.AbstractAsyncContextManager[Send]: ...


class ConsumeSide(Protocol):
    """Fills its queue with ``count`` events (not timed), then times draining it."""

    name: str

    async def drain(self, bench: Bench, count: int) -> Sample: ...


def payload(n: int) -> dict[str, Any]:
    """The event's data as every peer sends it (ours wraps it in a CloudEvent)."""
    return {"n": n, "note": NOTE}


async def classic_queue(channel: AbstractChannel, name: str, **arguments: Any) -> None:
    """Declare a classic durable queue (arguments as the library that owns it declares it)."""
    await channel.declare_queue(name, durable=True, arguments=arguments or None)


async def purge(url: str, queue: str) -> None:
    async with raw_channel(url, "bench.peers.purge") as channel:
        declared = await channel.get_queue(queue, ensure=False)
        await declared.purge()


async def depth(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare)."""
    async with raw_channel(url, "bench.peers.depth") as channel:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def wait_depth(url: str, queue: str, count: int, timeout_s: float = 120) -> None:
    """Until ``count`` messages are ready in ``queue`` (a fill without confirms landed)."""
    deadline = time.monotonic() + timeout_s
    while (ready := await depth(url, queue)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue} holds {ready} of {count} messages after {timeout_s:g}s")
        await asyncio.sleep(0.1)


RESULT = b"RESULT "


class Child:
    """A peer's worker in a child process: it consumes at once and, when its handler
    ran ``count`` times, writes ``RESULT {"first": t, "last": t, "cpu_s": s}`` on
    stdout (wall clock ``time.time()`` of its first and last handler run, the
    child's CPU time between them); anything else it prints is skipped.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, *argv: str) -> AsyncIterator[Child]:
        """Start ``argv``; killed on the way out (the parent purges what it left)."""
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield cls(process)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def result(self, timeout_s: float = 300) -> dict[str, Any]:
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(self._process.stdout.readline(), max(left, 0))
            except TimeoutError:
                raise RuntimeError(f"a peer's worker gave no result in {timeout_s:g}s") from None
            if line.startswith(RESULT):
                return dict(json.loads(line[len(RESULT):]))
            if not line:
                assert self._process.stderr is not None
                error = (await self._process.stderr.read()).decode()[-3000:]
                raise RuntimeError(f"a peer's worker exited: {error}")


class Counter:
    """The children's handler count: thread-safe, reports once ``count`` ran."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._seen = 0
        self._first = 0.0
        self._cpu = 0.0
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            if self._seen == 0:
                self._first, self._cpu = time.time(), time.process_time()
            self._seen += 1
            if self._seen == self._count:
                done = {"first": self._first, "last": time.time(),
                        "cpu_s": time.process_time() - self._cpu}
                # Straight to fd 1: workers may redirect sys.stdout to their logger.
                os.write(1, RESULT + json.dumps(done).encode() + b"\n")


def counting_handler(count: int) -> Callable[[int, str], None]:
    """A child's task body: counts its runs (``Counter``), ignores its arguments."""
    counter = Counter(count)

    def handle(n: int, note: str) -> None:
        counter.hit()

    return handle


async def drain_in_child(module: str, amqp_url: str, count: int) -> Sample:
    """Run ``python -m MODULE AMQP_URL COUNT`` until its handler ran ``count`` times.

    msg/s from the child's first handler run to its last (startup left out).
    """
    async with Child.run(sys.executable, "-m", module, amqp_url, str(count)) as child:
        done = await child.result()
    return Sample(count / (done["last"] - done["first"]), done["cpu_s"] / count * 1e6)
