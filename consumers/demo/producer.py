"""The demo's producer: orders events at a steady rate, some failing on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumers.demo import scenario
from consumers.demo.scenario import Kind
from pipeline import envelope
from pipeline.app import App
from pipeline.errors import ConfigurationError, PublishError
from pipeline.events import Event
from pipeline.publish.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderModels:
    """The app's event models the demo publishes (found by event type, not imported)."""

    placed: type[Event]
    cancelled: type[Event]

    @classmethod
    def from_app(cls, app: App) -> OrderModels:
        """Raise ``ConfigurationError`` if the app lacks the orders events."""
        try:
            return cls(app.events[scenario.PLACED_TYPE], app.events[scenario.CANCELLED_TYPE])
        except KeyError as missing:
            raise ConfigurationError(
                f"the demo publishes the orders domain, but PIPELINE_APP has no model for "
                f"{missing}; run it with the default app (consumers.registry:app)"
            ) from None


@dataclass
class ProducerCounts:
    """What the producer sent, by kind, and how many publishes were not confirmed."""

    sent: Counter[Kind]
    unconfirmed: int = 0
    express: int = 0  # of the placed orders, how many went in the express lane
    delayed: int = 0  # ... and how many were published with a delay

    @property
    def published(self) -> int:
        return sum(self.sent.values())

    @property
    def failing_on_purpose(self) -> int:
        return sum(n for kind, n in self.sent.items() if kind.fails_on_purpose)


class DemoProducer:
    """Publishes ``rate`` events per second through ``publisher`` until ``stop`` is set."""

    def __init__(
        self, publisher: Publisher, models: OrderModels, rate: float, run_tag: str, source: str,
        delays: bool = True,
    ) -> None:
        if rate <= 0:
            raise ConfigurationError(f"--rate must be above 0 events/s, not {rate:g}")
        self.counts = ProducerCounts(Counter())
        self._publisher = publisher
        self._models = models
        self._interval_s = 1.0 / rate
        self._run_tag = run_tag
        self._source = source
        self._delays = delays  # publish every 12th plain order with a delay

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop``; a publish that is not confirmed is counted and logged."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        n = 0
        while not stop.is_set():
            await self._publish(n)
            n += 1
            next_at += self._interval_s
            delay = next_at - loop.time()
            if delay <= 0:
                # Behind schedule (a slow confirm): carry on without a burst to catch up.
                next_at = loop.time()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: pipeline/consume/worker.py
                    await stop.wait()

    async def _publish(self, n: int) -> None:
        kind = scenario.kind_of(n)
        try:
            if kind.is_malformed:
                await self._publish_malformed(n, kind)
            elif kind is Kind.CANCELLED:
                data = scenario.cancelled_data(self._run_tag, n)
                await self._publisher.publish(self._models.cancelled.model_validate(data))
            else:
                data = scenario.placed_data(self._run_tag, n, kind)
                express = scenario.is_express(n)
                delayed = self._delays and scenario.is_delayed(n)
                await self._publisher.publish(self._models.placed.model_validate(data),
                                              priority="express" if express else "standard",
                                              delay=scenario.DELAY if delayed else None)
                self.counts.express += express
                self.counts.delayed += delayed
        except PublishError as exc:
            self.counts.unconfirmed += 1
            log.warning("demo event %d (%s) was not confirmed: %s", n, kind, exc)
            return
        self.counts.sent[kind] += 1

    async def _publish_malformed(self, n: int, kind: Kind) -> None:
        # Sent raw, past the publisher's validation, as a foreign producer
        # might: still confirmed and mandatory (publish_raw -> send_confirmed).
        data: Any = scenario.invalid_data(self._run_tag, n)
        cloud_event = envelope.CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=self._source,
            type=scenario.PLACED_TYPE,
            time=datetime.now(UTC),
            datacontenttype=envelope.DATA_CONTENT_TYPE,
            data=data,
        )
        body = (
            scenario.INVALID_JSON_BODY if kind is Kind.INVALID_JSON
            else envelope.encode(cloud_event)
        )
        await self._publisher.publish_raw(cloud_event, body, scenario.PLACED_TYPE)
