"""``PIPELINE_APP=tests.apps.group:app``: two consumers meant to run in one process.

The lifespan and both handlers journal to TEST_JOURNAL, so a test sees how
often the App started and which worker handled what.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from pipeline import App, Consumer, Context
from tests.support.events import OtherThingHappened, ThingHappened

alpha = Consumer("alpha", ["things.thing.#"], prefetch=3)
beta = Consumer("beta", ["things.other.#"], prefetch=1)


def _journal(line: str) -> None:
    with open(os.environ["TEST_JOURNAL"], "a") as journal:
        journal.write(line + "\n")


@alpha.handler
async def on_thing(event: ThingHappened, context: Context) -> None:
    _journal(f"alpha {event.n} {context.state}")


@beta.handler
async def on_other(event: OtherThingHappened, context: Context) -> None:
    _journal(f"beta {event.n} {context.state}")


@contextlib.asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[str]:
    _journal("startup")
    yield "pool-1"
    _journal("shutdown")


app = App([alpha, beta], lifespan=lifespan)
