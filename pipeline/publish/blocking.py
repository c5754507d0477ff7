"""A blocking publisher for sync code (Flask, Django, scripts).

It runs the async ``Publisher`` on an event loop in a background thread;
``publish`` blocks until the broker confirmed the event and raises the same
errors as the async one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from pipeline.events import Event
from pipeline.publish.publisher import Priority, Publisher
from pipeline.settings import PipelineSettings

T = TypeVar("T")


class BlockingPublisher:
    """``with BlockingPublisher(settings) as p: p.publish(OrderPlaced(...))``."""

    def __init__(self, settings: PipelineSettings, name: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pipeline-publisher", daemon=True
        )
        self._thread.start()
        try:
            self._publisher = self._call(Publisher.connect(settings, name))
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def publish(
        self,
        event: Event,
        *,
        routing_key: str | None = None,
        subject: str | None = None,
        headers: Mapping[str, Any] | None = None,
        extensions: Mapping[str, str] | None = None,
        event_id: str | None = None,
        delay: timedelta | None = None,
        at: datetime | None = None,
        priority: Priority = "standard",
    ) -> str:
        """Publish and block until confirmed; return the event id (see ``Publisher.publish``)."""
        return self._call(
            self._publisher.publish(event, routing_key=routing_key, subject=subject,
                                    headers=headers, extensions=extensions, event_id=event_id,
                                    delay=delay, at=at, priority=priority)
        )

    def publish_many(
        self,
        events: Iterable[Event | tuple[Event, str]],
        *,
        delay: timedelta | None = None,
        at: datetime | None = None,
        priority: Priority = "standard",
    ) -> list[str]:
        """Publish a batch with pipelined confirms (see ``Publisher.publish_many``)."""
        return self._call(self._publisher.publish_many(list(events), delay=delay, at=at,
                                                       priority=priority))

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._publisher.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> BlockingPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
