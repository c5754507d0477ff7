"""Replicas of one consumer: 1, 2 and 4 processes competing for one quorum queue.

Each replica is a process of its own running our Worker (``our_worker``), as
``docker compose up --scale billing=N`` runs them: the broker hands each
delivery to one of them, up to ``PREFETCH`` unacked each. The queue is filled
first; every replica connects and builds its worker, then all start on one
signal and the clock runs until the last of them handled its last message. The
handler only counts, so the figure is the pipeline's own cost per message plus
the broker's: on a machine with few cores the replicas, the broker and the
parent share them, and more replicas scale only while cores are idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from typing import Any

from bench.broker import BrokerTarget
from bench.harness import (
    Bench,
    Tally,
    counting_consumer,
    declare,
    envelope_messages,
    fill,
    our_worker,
    purge,
)
from bench.results import Result, Sample

FAMILY = "replicas"
CONSUMER = "bench"
QUEUE = "pipeline.bench"
PREFETCH = 10
REPLICAS = (1, 2, 4)


class _Timed(Tally):
    """A tally that also keeps when its last message was handled (wall clock)."""

    def __init__(self) -> None:
        super().__init__(expected=sys.maxsize)
        self.last: float | None = None

    def hit(self) -> None:
        super().hit()
        self.last = time.time()


async def _replica(spec: dict[str, Any]) -> dict[str, Any]:
    """One replica (a child process): ready, wait for "go", consume, answer "count" until "stop"."""
    bench = Bench(BrokerTarget(spec["amqp_url"], spec["management_url"]), spec["vhost"],
                  None)  # type: ignore[arg-type]  # the scale is the parent's business
    tally = _Timed()
    loop = asyncio.get_running_loop()
    async with our_worker(bench.settings(), counting_consumer(CONSUMER, tally), QUEUE) as (
            worker, _):
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        cpu = time.process_time()
        await worker.start(PREFETCH)
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
            print(tally.count, flush=True)
        return {"handled": tally.count, "last": tally.last, "cpu_s": time.process_time() - cpu}


async def _ask(child: asyncio.subprocess.Process, line: bytes) -> bytes:
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(line)
    await child.stdin.drain()
    return await asyncio.wait_for(child.stdout.readline(), 60)


async def _timed_run(bench: Bench, replicas: int, count: int) -> Sample:
    await purge(bench.amqp_url, QUEUE)
    await fill(bench.amqp_url, QUEUE, envelope_messages(range(count)))
    spec = json.dumps({"amqp_url": bench.target.amqp_url,
                       "management_url": bench.target.management_url, "vhost": bench.vhost})
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.replicas", spec, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(replicas)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"a replica did not start: {line!r}")
        started = time.time()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        # Until the replicas handled them all (the clock is their last handling time)
        deadline = time.monotonic() + 300
        while sum([int(await _ask(child, b"count\n")) for child in children]) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas did not handle {count} messages in 300 s")
            await asyncio.sleep(0.1)
        outputs = [await asyncio.wait_for(child.communicate(b"stop\n"), 60)
                   for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
    done = []
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a replica failed: {stderr.decode()[-3000:]}")
        done.append(json.loads(stdout.decode().splitlines()[-1]))
    handled = sum(d["handled"] for d in done)
    if handled != count:
        raise RuntimeError(f"the replicas handled {handled} of {count} messages")
    last = max(d["last"] for d in done if d["last"] is not None)
    cpu = sum(d["cpu_s"] for d in done)
    return Sample(count / (last - started), cpu / count * 1e6)


async def run(bench: Bench) -> list[Result]:
    await declare(bench, [counting_consumer(CONSUMER, Tally(0))], bench.settings())
    count = bench.scale.replicas_backlog
    results = []
    one: float | None = None
    for replicas in REPLICAS:
        reps = bench.scale.replicas_reps
        samples = [await _timed_run(bench, replicas, count) for _ in range(reps)]
        result = Result.of(FAMILY, f"{replicas} replica{'s' if replicas > 1 else ''} of one "
                           f"consumer, prefetch {PREFETCH}", "msg/s", True, samples, [],
                           note=f"backlog of {count}")
        median = sorted(result.ours)[len(result.ours) // 2]
        one = one or median
        result.note += f"; {median / one:.2f}x one replica; CPU us/msg is all replicas' sum"
        results.append(result)
    await purge(bench.amqp_url, QUEUE)
    return results


def _child(described: str) -> None:
    logging.basicConfig(level=logging.CRITICAL)
    print(json.dumps(asyncio.run(_replica(json.loads(described)))), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
