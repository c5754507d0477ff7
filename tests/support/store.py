"""Fill the dead-letter store the real way, and run the CLI in-process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pipeline import App, Consumer, PermanentError, PipelineSettings, Publisher, TransientError
from pipeline.commands.cli import main
from tests.support.events import OtherThingHappened, ThingHappened
from tests.support.runtime import queue_state, running
from tests.support.waiting import eventually


class CardExpiredError(PermanentError):
    pass


def failing_app() -> App:
    """alpha: even n -> permanent error, odd n -> fails every rung; beta: card expired."""
    alpha = Consumer("alpha", ["things.thing.*"], prefetch=10)
    beta = Consumer("beta", ["things.other.*"], prefetch=10)

    @alpha.handler
    async def alpha_handle(event: ThingHappened) -> None:
        if event.n % 2 == 0:
            raise PermanentError(f"thing {event.n} is broken for good")
        raise TransientError(f"thing {event.n} is not ready")

    @beta.handler
    async def beta_handle(event: OtherThingHappened) -> None:
        raise CardExpiredError(f"other {event.n}: card expired")

    return App([alpha, beta])


async def fill_store(settings: PipelineSettings, things: int = 4, others: int = 2) -> int:
    """Dead-letter ``things`` events in alpha and ``others`` in beta; return the total."""
    app = failing_app()
    total = things + others
    async with running(settings, app, app.consumer("alpha")), \
            running(settings, app, app.consumer("beta")):
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish_many(
                [ThingHappened(n=i) for i in range(things)]
                + [OtherThingHappened(n=i) for i in range(others)]
            )

        async def all_stored() -> None:
            assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == total

        await eventually(all_stored, timeout=15)
    return total


def cli_env(settings: PipelineSettings) -> dict[str, str]:
    return {
        "PIPELINE_AMQP_URL": settings.amqp_url.get_secret_value(),
        "PIPELINE_MANAGEMENT_URL": settings.management_url.get_secret_value(),
        "PIPELINE_RETRY_DELAYS": settings.retry_delays,
        "PIPELINE_APP": settings.app or "",
        "PIPELINE_SERVICE_NAME": "tests-cli",
    }


async def run_cli(args: Sequence[str]) -> int:
    """``pipeline ARGS`` in a thread (it runs its own event loop); root logging restored."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return await asyncio.to_thread(main, list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
