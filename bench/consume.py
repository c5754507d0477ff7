"""Consuming a backlog at prefetch 1, 10 and 100 from classic and quorum queues.

Ours is the real Worker (envelope validation, typed dispatch, the failure
policy and the tracing middleware, as ``run_worker`` builds it); raw is an
aio-pika consumer that json-decodes the body, calls the handler, then acks.
Both consume the same queue, pre-filled with the same messages before each
timed run; the clock starts before ``basic.qos`` + ``basic.consume`` and
stops when the last handler ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

from aio_pika import connect

from bench.broker import BrokerTarget
from bench.harness import (
    Bench,
    Scale,
    Stopwatch,
    Tally,
    counting_consumer,
    declare,
    envelope_messages,
    fill,
    our_worker,
    purge,
    raw_drain,
)
from bench.results import Result, Sample, Target, interleave
from bench.tracing_sdk import install_tracing
from pipeline import Consumer

FAMILY = "consume"
CLASSIC = "bench.consume.classic"
QUORUM = "pipeline.bench"
QUEUES = {"classic": CLASSIC, "quorum": QUORUM}


def _consumer(tally: Tally) -> Consumer:
    return counting_consumer("bench", tally)


async def _ours(bench: Bench, queue: str, prefetch: int, count: int) -> Sample:
    await purge(bench.amqp_url, queue)
    await fill(bench.amqp_url, queue, envelope_messages(range(count)))
    tally = Tally(count)
    async with our_worker(bench.settings(), _consumer(tally), queue) as (worker, _):
        clock = Stopwatch()
        await worker.start(prefetch)
        await tally.wait()
        return clock.sample(count)


async def _raw(bench: Bench, queue: str, prefetch: int, count: int) -> Sample:
    await purge(bench.amqp_url, queue)
    await fill(bench.amqp_url, queue, envelope_messages(range(count)))
    return await raw_drain(bench, queue, prefetch, count)


async def _setup(bench: Bench) -> None:
    await declare(bench, [_consumer(Tally(0))], bench.settings())
    connection = await connect(bench.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(CLASSIC, durable=True, arguments={"x-queue-type": "classic"})


async def _compare(
    bench: Bench, kind: str, prefetch: int, count: int
) -> tuple[list[Sample], list[Sample]]:
    queue = QUEUES[kind]
    return await interleave(
        bench.scale.reps,
        lambda: _ours(bench, queue, prefetch, count),
        lambda: _raw(bench, queue, prefetch, count),
    )


async def run(bench: Bench) -> list[Result]:
    """Tracing off: no SDK tracer provider, so our spans are the API's no-ops."""
    await _setup(bench)
    warm = bench.scale.warmup
    await _ours(bench, QUORUM, 10, warm)
    await _raw(bench, QUORUM, 10, warm)
    results = []
    for kind in QUEUES:
        for prefetch, count in bench.scale.consume.items():
            ours, raws = await _compare(bench, kind, prefetch, count)
            target = Target("ratio", at_least=1.0) if prefetch == 100 else None  # issue 19
            results.append(Result.of(
                FAMILY, f"{kind} queue, prefetch {prefetch}, tracing off", "msg/s", True,
                ours, raws, target=target, note=f"backlog of {count}",
            ))
    await purge(bench.amqp_url, CLASSIC, QUORUM)
    return results


# The sampling of each traced run: the SDK's default (parent-based, always on:
# every delivery of the backlog, which carries no trace context, is a sampled
# root) and one trace in ten, from the standard variables the SDK reads.
SAMPLINGS: dict[str, dict[str, str]] = {
    "": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    ", 10% sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                      "OTEL_TRACES_SAMPLER_ARG": "0.1"},
}


async def run_traced(bench: Bench) -> list[Result]:
    """Tracing on, in a child process per sampling: the SDK's provider is installed
    there before anything else runs, as a service does at startup (and this process
    stays untraced: a global provider can be set only once)."""
    results = []
    for label, variables in SAMPLINGS.items():
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.consume", json.dumps(_describe(bench)), label,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **variables},
        )
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"traced consume child failed: {stderr.decode()[-3000:]}")
        results += [Result.from_json(item)
                    for item in json.loads(stdout.decode().splitlines()[-1])]
    return results


def _describe(bench: Bench) -> dict[str, Any]:
    return {"amqp_url": bench.target.amqp_url, "management_url": bench.target.management_url,
            "vhost": bench.vhost, "scale": dataclasses.asdict(bench.scale)}


async def _traced(bench: Bench, label: str) -> list[Result]:
    exporter = install_tracing()
    await _setup(bench)
    count = bench.scale.consume[100]
    results = []
    for kind in QUEUES:
        exported_before = exporter.spans
        ours, raws = await _compare(bench, kind, 100, count)
        exporter.flush()
        per_message = (exporter.spans - exported_before) / (count * bench.scale.reps)
        # One span per delivery (the process span; the handler span is opt-in):
        # 1.0 when every delivery is sampled, about 0.1 at 10%.
        results.append(Result.of(
            FAMILY, f"{kind} queue, prefetch 100, tracing on{label}", "msg/s", True, ours,
            raws, target=Target("ratio", at_least=0.85) if not label else None,
            note=f"backlog of {count}; {per_message:.2f} spans exported per message",
        ))
    await purge(bench.amqp_url, CLASSIC, QUORUM)
    return results


def _child(described: str, label: str) -> None:
    spec = json.loads(described)
    scale = Scale(**{**spec["scale"], "consume": {int(k): v for k, v in
                                                   spec["scale"]["consume"].items()}})
    bench = Bench(BrokerTarget(spec["amqp_url"], spec["management_url"]), spec["vhost"], scale)
    results = asyncio.run(_traced(bench, label))
    print(json.dumps([dataclasses.asdict(result) for result in results]))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
