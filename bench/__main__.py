"""``python -m bench [--quick] [--json FILE] [--cases ...]``: run, print the table, write JSON.

Exit codes: 0 the run finished (targets met or not: the table says which),
1 a case failed to run, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench import (
    consume,
    delay,
    express,
    failure_path,
    latency,
    ledger,
    memory,
    outbox,
    peers,
    publish,
    replicas,
    report,
    rung_accuracy,
    scaling,
    testing,
)
from bench.broker import DEFAULT_AMQP, DEFAULT_MANAGEMENT, BrokerTarget, isolated_vhost
from bench.harness import FULL, QUICK, TARGETS, Bench
from bench.results import Result

Case = Callable[[Bench], Awaitable[list[Result]]]

# In run order. "consume-traced" runs in a child process that installs the
# SDK's tracer provider before anything else, as a service does at startup: a
# global provider can be set only once per process, and this one stays untraced.
CASES: dict[str, Case] = {
    "publish": publish.run,
    "consume": consume.run,
    "replicas": replicas.run,
    "scaling": scaling.run,
    "failure": failure_path.run,
    "rung": rung_accuracy.run,
    "delay": delay.run,
    "latency": latency.run,
    "express": express.run,
    "memory": memory.run,
    "testing": testing.run,
    "ledger": ledger.run,
    "outbox": outbox.run,
    "consume-traced": consume.run_traced,
    # FastStream, Dramatiq and Celery beside ours (``make bench-peers``): not in the
    # default run, which must stay under 10 minutes; ask for it with --cases or --peers.
    "peers": peers.run,
}
ALL_CASES = [name for name in CASES if name != "peers"]
# `make bench`: the cases that carry the performance targets (docs/performance.md),
# consume at prefetch 100 only, so it stays under 10 minutes on 2 cores. `--all`
# (`make bench-all`) runs every case and the prefetch 1 and 10 rows too; `--quick`
# runs every case with tiny counts, so none of them can rot.
DEFAULT_CASES = ["publish", "consume", "failure", "rung", "latency", "memory", "consume-traced"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts (CI smoke run): checks the bench works, not speed")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=None,
                        metavar="CASE", help=f"cases to run (default: {', '.join(DEFAULT_CASES)};"
                                             f" with --quick or --all every case but peers): "
                                             f"{', '.join(CASES)}")
    parser.add_argument("--all", action="store_true",
                        help="every case but peers, consume at prefetch 1, 10 and 100")
    parser.add_argument("--peers", action="store_true",
                        help="also run the peers case (FastStream, Dramatiq, Celery)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP,
                        help="broker AMQP URL; its vhost part is ignored")
    parser.add_argument("--management-url", default=DEFAULT_MANAGEMENT)
    parser.add_argument("--vhost", help="use this existing vhost and leave it "
                        "(default: create bench-<random> and delete it afterwards)")
    return parser.parse_args(argv)


async def run_cases(bench: Bench, names: list[str], console: Console) -> list[Result]:
    results: list[Result] = []
    for name in CASES:  # registry order, whatever order they were asked in
        if name not in names:
            continue
        started = time.perf_counter()
        console.print(f"[bold]{name}[/] ...", end=" ")
        results.extend(await CASES[name](bench))
        console.print(f"{time.perf_counter() - started:.1f}s")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cases is None:
        args.cases = list(ALL_CASES if args.quick or args.all else DEFAULT_CASES)
    if args.peers and "peers" not in args.cases:
        args.cases.append("peers")
    logging.basicConfig(level=logging.CRITICAL)  # our failure path logs every retry
    # Wide enough for the table even when the output is a pipe (CI, make).
    console = Console(width=None if sys.stdout.isatty() else 150)
    target = BrokerTarget(args.amqp_url, args.management_url)
    scale = QUICK if args.quick else FULL if args.all else TARGETS
    started = time.perf_counter()
    facts = report.machine_facts(target.facts())
    try:
        with isolated_vhost(target, args.vhost) as vhost:
            bench = Bench(target, vhost, scale)
            results = asyncio.run(run_cases(bench, args.cases, console))
    except Exception as exc:  # report it in one line; the traceback follows for a bug
        console.print(f"[red]benchmark failed:[/] {type(exc).__name__}: {exc}")
        logging.getLogger("bench").critical("traceback", exc_info=True)
        return 1
    elapsed = time.perf_counter() - started
    facts["load_average_after"] = list(os.getloadavg())
    report.print_report(results, facts, console)
    console.print(f"total {elapsed:.0f}s")
    if args.json:
        run = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "quick": args.quick, "cases": args.cases, "reps": scale.reps,
               "seconds": round(elapsed, 1)}
        report.write_json(args.json, results, facts, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
