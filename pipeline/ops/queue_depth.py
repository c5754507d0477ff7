"""Queue depths as Prometheus gauges, read from the broker's management API on scrape.

A worker reports the queues it declares: its own queue, its rungs and the
shared dead-letter queues. Every replica of a consumer reports the same
numbers, so aggregate with ``max`` rather than ``sum``. The broker itself
refreshes these numbers every few seconds (``collect_statistics_interval``),
and we ask it at most once per ``min_interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.ops.management import open_management
from pipeline.ops.protocols import ManagementApi
from pipeline.settings import PipelineSettings
from topology import QueueSpec

log = logging.getLogger(__name__)

LABELS = ["queue", "consumer", "role"]


class QueueDepths(Collector):
    """Collects ``pipeline_queue_messages`` and ``pipeline_queue_consumers`` for ``queues``."""

    def __init__(
        self, settings: PipelineSettings, queues: Sequence[QueueSpec], min_interval_s: float = 2.0
    ) -> None:
        self._settings = settings
        self._queues = tuple(queues)
        self._min_interval_s = min_interval_s
        self._client: ManagementApi | None = None
        self._by_name: dict[str, dict[str, Any]] = {}
        self._read_at = float("-inf")
        self._is_up: bool | None = None  # unknown until the first read

    async def refresh(self) -> None:
        """Read the broker's queue list if the last read is old; never raises.

        A failed read is logged once per outage; the gauges then drop out
        and ``pipeline_queue_depth_up`` reads 0.
        """
        if time.monotonic() - self._read_at < self._min_interval_s:
            return
        self._read_at = time.monotonic()
        if self._client is None:
            self._client = open_management(self._settings, timeout_s=3.0)
        try:
            listed = await self._client.queues()
        except Exception as exc:  # a scrape must still answer, with what it has
            if self._is_up is not False:  # once per outage, not once per scrape
                log.warning("queue depths unavailable from the management API: %s", exc)
            self._is_up = False
            self._by_name = {}
            return
        self._by_name = {q["name"]: q for q in listed if "name" in q}
        self._is_up = True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        messages, consumers, up = self._families()
        for spec in self._queues:
            listed = self._by_name.get(spec.name)
            if listed is None:
                continue
            labels = [spec.name, spec.consumer or "", spec.role]
            # A new quorum queue may not report numbers for a few seconds.
            messages.add_metric(labels, float(listed.get("messages") or 0))
            consumers.add_metric(labels, float(listed.get("consumers") or 0))
        up.add_metric([], 1.0 if self._is_up else 0.0)
        yield from (messages, consumers, up)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "pipeline_queue_messages", "Messages in the queue (ready + unacked)",
                labels=LABELS,
            ),
            GaugeMetricFamily(
                "pipeline_queue_consumers", "Consumers attached to the queue", labels=LABELS
            ),
            GaugeMetricFamily(
                "pipeline_queue_depth_up", "1 if the last read of queue depths worked"
            ),
        )
