"""The failure path: through a short-TTL rung and back, and to the dead-letter store.

Ours is the Worker with the real failure policy (a confirmed, mandatory copy
with the failure headers, then the ack); raw does the same two steps by hand
(``bench.raw.RawRetry``). The clock stops when every delivery was settled.

Broker round trips per failed delivery are counted, not estimated: the
worker channel's AMQP commands are wrapped and counted while only failing
deliveries flow (see ``CommandCount``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractChannel

from bench import raw
from bench.harness import (
    AfterSettle,
    Bench,
    BenchHappened,
    Stopwatch,
    Tally,
    declare,
    envelope_messages,
    fill,
    our_worker,
    purge,
)
from bench.results import Result, Sample, Target, interleave
from pipeline import Consumer, PermanentError, TransientError
from topology import naming

FAMILY = "failure path"
NAME = "bench-fail"
QUEUE = naming.consumer_queue(NAME)
RUNG_DELAYS = "100ms"
RUNG = naming.retry_queue(NAME, 1, RUNG_DELAYS)
STORE_QUEUES = (naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_QUEUE)
# AMQP commands a consumer's channel can send while settling deliveries.
COUNTED = ("basic_publish", "basic_ack", "basic_nack", "basic_reject", "rpc")


class CommandCount:
    """Counts the AMQP commands sent on one aiormq channel, by method.

    A confirmed publish is one round trip (basic.publish out, basic.ack
    confirm back, awaited); an ack is one command with no reply. Both are
    counted as one trip each, so the figure is an upper bound.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._setup = 0
        self._active = True

    def setup_done(self) -> None:
        """Everything counted so far (qos, passive declare, consume) is per consumer."""
        self._setup += self.counts["rpc"]
        self.counts["rpc"] = 0
        self._active = True

    def finish(self) -> None:
        """Stop counting: what follows (basic.cancel, close) is per consumer too."""
        self._active = False

    async def watch(self, channel: AbstractChannel) -> None:
        underlay = await channel.get_underlay_channel()
        for name in COUNTED:
            setattr(underlay, name, self._counting(name, getattr(underlay, name)))

    def _counting(self, name: str, method: Callable[..., Awaitable[Any]]) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            if self._active:
                self.counts[name] += 1
            return await method(*args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def per(self, deliveries: int) -> str:
        return ", ".join(f"{name} {n / deliveries:.2f}" for name, n in sorted(self.counts.items())
                         if n)


def _consumer(permanent: bool) -> Consumer:
    consumer = Consumer(NAME, ["bench.#"])
    seen: set[int] = set()

    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        if permanent:
            raise PermanentError("bench: always refused")
        if event.n not in seen:
            seen.add(event.n)
            raise TransientError("bench: fails once")

    return consumer


async def _ours(bench: Bench, count: int, permanent: bool, commands: CommandCount) -> Sample:
    # Acks still queued when the last run closed its connection come back as
    # redeliveries: start from an empty queue.
    await purge(bench.amqp_url, QUEUE)
    await fill(bench.amqp_url, QUEUE, envelope_messages(range(count)))
    tally = Tally(count if permanent else 2 * count)
    settings = bench.settings(retry_delays=RUNG_DELAYS)
    settle = AfterSettle(lambda _: tally.hit())
    async with our_worker(settings, _consumer(permanent), middlewares=[settle]) as (worker, ch):
        await commands.watch(ch)
        clock = Stopwatch()
        await worker.start(100)
        commands.setup_done()
        await tally.wait()
        result = clock.sample(count)
        commands.finish()
    await purge(bench.amqp_url, *STORE_QUEUES)
    return result


async def _raw(bench: Bench, count: int, permanent: bool, commands: CommandCount) -> Sample:
    # Acks still queued when the last run closed its connection come back as
    # redeliveries: start from an empty queue.
    await purge(bench.amqp_url, QUEUE)
    await fill(bench.amqp_url, QUEUE, envelope_messages(range(count)))
    tally = Tally(count if permanent else 2 * count)
    seen: set[int] = set()

    async def handle(data: dict[str, Any]) -> None:
        if permanent:
            raise PermanentError("bench: always refused")
        if data["n"] not in seen:
            seen.add(data["n"])
            raise TransientError("bench: fails once")

    def destination(headers: dict[str, Any]) -> tuple[str, str]:
        return (naming.DEAD_LETTER_EXCHANGE, "") if permanent else ("", RUNG)

    async with raw.raw_channel(bench.amqp_url) as channel:
        await commands.watch(channel)
        retry = raw.RawRetry(channel, handle, destination)
        clock = Stopwatch()
        await retry.start(QUEUE, 100, tally.hit)
        commands.setup_done()
        await tally.wait()
        result = clock.sample(count)
        commands.finish()
    await purge(bench.amqp_url, *STORE_QUEUES)
    return result


async def run(bench: Bench) -> list[Result]:
    count = bench.scale.failure
    await declare(bench, [_consumer(False)], bench.settings(retry_delays=RUNG_DELAYS))
    results = []
    for permanent, case in ((False, f"through the {RUNG_DELAYS} rung and back"),
                            (True, "to the dead-letter store")):
        ours_cmds, raw_cmds = CommandCount(), CommandCount()
        ours, raws = await interleave(
            bench.scale.reps,
            lambda p=permanent, c=ours_cmds: _ours(bench, count, p, c),  # type: ignore[misc]
            lambda p=permanent, c=raw_cmds: _raw(bench, count, p, c),  # type: ignore[misc]
        )
        results.append(Result.of(FAMILY, case, "msg/s", True, ours, raws,
                                 target=Target("ratio", at_least=0.9),  # issue 19
                                 note=f"{count} failing messages, prefetch 100"))
        # The successful second deliveries of the rung case each add one ack.
        failures = count * bench.scale.reps
        successes = 0 if permanent else failures
        per = [(c.total - successes) / failures for c in (ours_cmds, raw_cmds)]
        results.append(Result(
            FAMILY, f"broker round trips per failed delivery ({'store' if permanent else 'rung'})",
            "trips", False, [per[0]], [per[1]], Target("value", at_most=2),
            note=f"commands per failed delivery, ours: {ours_cmds.per(failures)}; "
                 f"raw: {raw_cmds.per(failures)}" + ("" if permanent else
                 " (minus the ack of each successful redelivery)"),
        ))
    return results
