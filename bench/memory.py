"""Consumer peak RSS with a backlog, measured in a child process of its own.

The parent fills the queue, then starts ``python -m bench.memory ours|raw
URL QUEUE COUNT``; the child consumes COUNT messages at prefetch 100 and
prints one JSON line: its RSS before consuming (after imports and connect)
and its peak RSS (``VmHWM``). Only stdlib is imported at module level,
so the raw child never loads ``pipeline``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.harness import Bench
    from bench.results import Result

FAMILY = "memory"
NAME = "bench-memory"
PREFETCH = 100
CHILD_TIMEOUT_S = 300


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    return _status_mb("VmRSS") or 0.0


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child started by
    # fork+exec would report the (bigger) parent's size.
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _child_raw(url: str, queue: str, count: int) -> float:
    from bench import raw

    done = asyncio.Event()
    handled = 0

    async def handle(data: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            done.set()

    async with raw.raw_channel(url) as channel:
        before = _rss_mb()
        await raw.consume(channel, queue, PREFETCH, handle)
        await asyncio.wait_for(done.wait(), CHILD_TIMEOUT_S)
    return before


async def _child_ours(url: str, queue: str, count: int) -> float:
    from bench.broker import BrokerTarget
    from bench.harness import QUICK as ANY_SCALE
    from bench.harness import Bench, Tally, counting_consumer, our_worker

    bench = Bench(BrokerTarget(), "", ANY_SCALE)
    tally = Tally(count)
    consumer = counting_consumer(NAME, tally)
    async with our_worker(bench.settings(amqp_url=url), consumer, queue) as (worker, _):
        before = _rss_mb()
        await worker.start(PREFETCH)
        await tally.wait(CHILD_TIMEOUT_S)
    return before


def child(argv: list[str]) -> None:
    side, url, queue, count = argv[0], argv[1], argv[2], int(argv[3])
    run = _child_ours if side == "ours" else _child_raw
    before = asyncio.run(run(url, queue, count))
    print(json.dumps({"before_mb": before, "peak_mb": _peak_mb()}))


async def _measure(bench: Bench, side: str, count: int) -> dict[str, float]:
    from bench.harness import envelope_messages, fill
    from topology import naming

    queue = naming.consumer_queue(NAME)
    await fill(bench.amqp_url, queue, envelope_messages(range(count)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.memory", side, bench.amqp_url, queue, str(count),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT_S + 30)
    if process.returncode != 0:
        raise RuntimeError(f"memory child ({side}) failed: {stderr.decode()[-2000:]}")
    result: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def run(bench: Bench) -> list[Result]:
    from bench.harness import declare
    from bench.results import Result, Target, interleave
    from pipeline import Consumer

    count = bench.scale.memory_backlog
    await declare(bench, [Consumer(NAME, ["bench.#"])], bench.settings())
    ours, raws = await interleave(
        bench.scale.memory_reps,
        lambda: _measure(bench, "ours", count),
        lambda: _measure(bench, "raw", count),
    )
    note = f"backlog of {count}, prefetch {PREFETCH}, consumer in its own process"
    return [
        Result(FAMILY, "consumer peak RSS", "MB", False,
               [o["peak_mb"] for o in ours], [r["peak_mb"] for r in raws],
               Target("ratio", at_most=1.3), note=note),  # issue 19
        Result(FAMILY, "consumer RSS growth while draining", "MB", False,
               [o["peak_mb"] - o["before_mb"] for o in ours],
               [r["peak_mb"] - r["before_mb"] for r in raws], note=note),
    ]


if __name__ == "__main__":
    child(sys.argv[1:])
