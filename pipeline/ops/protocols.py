"""The interfaces the ops side plugs together, in one place.

    ManagementApi   what status, drift, queue depths and the demo ask the broker's
                    management API: RabbitMQ's HTTP API (``ManagementClient``) or,
                    for ``memory://``, the in-process broker's answers
                    (``pipeline.memory.management.MemoryManagement``)
    MetricsSource   what ``/metrics`` serves: one worker's ``PipelineMetrics`` or a
                    process's merged ``GroupMetrics``
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class ManagementApi(Protocol):
    """Queue, exchange, binding and policy listings in the management API's JSON shapes.

    Every method raises ``BrokerUnreachableError`` when the answer cannot be
    had and ``ManagementNotFoundError`` for what does not exist.
    """

    ui_url: str
    vhost: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def close(self) -> None: ...

    async def get(self, path: str, **params: Any) -> Any: ...

    async def queues(self) -> list[dict[str, Any]]: ...

    async def queue(self, name: str) -> dict[str, Any]: ...

    async def policies(self) -> list[dict[str, Any]]: ...

    async def overview(self) -> dict[str, Any]: ...


class MetricsSource(Protocol):
    """Holds the registry ``/metrics`` exposes (queue depths are added to it while serving)."""

    @property
    def registry(self) -> CollectorRegistry: ...
