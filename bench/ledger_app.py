"""The App the ledger benchmark runs its ledger process with (``python -m consumers ledger``).

Its consumers only declare which keys the ledger expects them at; the
benchmark runs their workers in its own process.
"""

from __future__ import annotations

from bench.harness import BenchHappened
from pipeline import App, Consumer
from pipeline.ledger.worker import ledger_worker

CONSUMERS = [Consumer(name, ["bench.#"]) for name in
             ("bench-ledger", "billing-lag", "shipping-lag", "audit-lag")]


def _ignore(consumer: Consumer) -> None:
    @consumer.handler
    async def handle(event: BenchHappened) -> None:
        return None


for _consumer in CONSUMERS:
    _ignore(_consumer)

app = App(CONSUMERS, workers={"ledger": ledger_worker(c.subscription for c in CONSUMERS)})
