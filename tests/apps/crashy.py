"""A test app whose handler kills its own process on a poison event.

``note == "poison"`` -> ``os._exit(17)`` before anything is acked: the way a
segfaulting C extension or an OOM kill looks to the broker. ``note ==
"poison-after-retry"`` fails transiently first, then kills the process on
the retry: a crash loop of a message that has been through a rung. Every other
event is journalled to TEST_JOURNAL ("done N") so the test process can see
what a consumer running as a subprocess handled.
"""

from __future__ import annotations

import os

from pipeline import App, Consumer, Context, TransientError
from tests.support.events import ThingHappened

CRASH_EXIT_CODE = 17

# prefetch 1: only the poison is in flight when the process dies, so no
# innocent event has its delivery count raised by the crashes.
consumer = Consumer("crashy", ["things.#"], prefetch=1)


@consumer.handler
async def handle(event: ThingHappened, context: Context) -> None:
    if event.note == "poison-after-retry" and context.attempt == 1:
        raise TransientError("the first try fails; the retry will crash")
    if event.note in ("poison", "poison-after-retry"):
        os._exit(CRASH_EXIT_CODE)
    with open(os.environ["TEST_JOURNAL"], "a") as journal:
        journal.write(f"done {event.n}\n")


app = App([consumer])
