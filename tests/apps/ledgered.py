"""A test app with the event ledger as a worker: ``python -m consumers ledger``.

``billing`` journals what it handles to ``TEST_JOURNAL`` when that is set.
"""

from __future__ import annotations

import os

from pipeline import App, Consumer
from pipeline.ledger.worker import ledger_worker
from tests.support.events import ThingHappened

billing = Consumer("billing", ["things.#"], prefetch=50)


@billing.handler
async def handle(event: ThingHappened) -> None:
    journal = os.environ.get("TEST_JOURNAL")
    if journal:
        with open(journal, "a") as out:
            out.write(f"done {event.n}\n")


app = App([billing], workers={"ledger": ledger_worker([billing.subscription])})
