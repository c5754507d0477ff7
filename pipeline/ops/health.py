"""Health and metrics over HTTP for one worker process, on ``PIPELINE_HEALTH_PORT``.

    GET /healthz   200 while the process and its event loop answer (liveness)
    GET /readyz    200 once connected, topology applied and consuming; 503 with
                   the failing checks otherwise, also while draining on SIGTERM
    GET /metrics   Prometheus text format (pipeline.ops.metrics, pipeline.ops.queue_depth)

A few lines of asyncio instead of a web framework: three GET routes, one
request per connection. ``python -m pipeline.ops.health`` probes ``/readyz`` of
the local process and exits 0 or 1 (the image's HEALTHCHECK).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigurationError
from pipeline.ops.protocols import MetricsSource
from pipeline.settings import PipelineSettings
from topology import QueueSpec

if TYPE_CHECKING:
    from pipeline.ops.queue_depth import QueueDepths

log = logging.getLogger(__name__)

READY_CHECKS = ("connected", "topology", "consuming")
# A client that sends nothing must not hold a connection open for ever.
REQUEST_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 100
JSON = "application/json"


class Readiness:
    """Named checks that must all pass for ``/readyz``; unset checks fail."""

    def __init__(self, required: Sequence[str] = READY_CHECKS) -> None:
        self._required = tuple(required)
        self._checks: dict[str, Callable[[], bool]] = {}

    def mark(self, name: str) -> None:
        """A one-time step is done (for example: the topology was applied)."""
        self._checks[name] = lambda: True

    def watch(self, name: str, check: Callable[[], bool]) -> None:
        """A condition evaluated on every request (for example: still connected)."""
        self._checks[name] = check

    def report(self) -> dict[str, bool]:
        return {name: self._passes(name) for name in self._required}

    @property
    def is_ready(self) -> bool:
        return all(self.report().values())

    def _passes(self, name: str) -> bool:
        check = self._checks.get(name)
        try:
            return bool(check and check())
        except Exception:  # a broken check means "not ready", never a crashed server
            log.warning("readiness check %s failed", name, exc_info=True)
            return False


class HealthServer:
    """Serves /healthz, /readyz and /metrics for one process."""

    def __init__(
        self, probe: Readiness, metrics: MetricsSource, depths: QueueDepths | None = None
    ) -> None:
        self.probe = probe
        self.metrics = metrics
        self._depths = depths
        self._started = time.monotonic()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (0 picks a free port); raises ``OSError`` if taken."""
        self._server = await asyncio.start_server(self._handle, host, port)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def respond(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET of ``path``."""
        if path == "/healthz":
            uptime = round(time.monotonic() - self._started, 1)
            return 200, JSON, _json({"status": "alive", "uptime_s": uptime})
        if path == "/readyz":
            checks = self.probe.report()
            ready = all(checks.values())
            return (200 if ready else 503), JSON, _json({"ready": ready, "checks": checks})
        if path == "/metrics":
            if self._depths is not None:
                await self._depths.refresh()
            # Imported on the first scrape: a worker without a health port never loads it.
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return 404, JSON, _json({"error": f"no such path {path}; try /healthz, /readyz, /metrics"})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, path = await _read_request(reader)
            if method not in ("GET", "HEAD"):
                status, content_type, body = 405, JSON, _json({"error": "only GET"})
            else:
                status, content_type, body = await self.respond(path)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a client that went away or spoke nonsense gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode() + b"\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of one HTTP request; headers are read and ignored."""
    request_line = (await reader.readline()).decode("latin-1").split()
    if len(request_line) < 2:
        raise ValueError("not an HTTP request")
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    return request_line[0].upper(), request_line[1].split("?", 1)[0]


@contextlib.asynccontextmanager
async def serving_health(
    settings: PipelineSettings,
    probe: Readiness,
    metrics: MetricsSource,
    queues: Sequence[QueueSpec] = (),
) -> AsyncIterator[HealthServer | None]:
    """Serve health and metrics on ``PIPELINE_HEALTH_PORT`` until the block ends.

    Yields None when the port is 0 (disabled). Raises ``ConfigurationError``
    when the port cannot be bound (in use, or not allowed).
    """
    if settings.health_port == 0:
        yield None
        return
    # Imported only when serving: it loads prometheus-client and the management client.
    from pipeline.ops.queue_depth import QueueDepths

    depths = QueueDepths(settings, queues) if queues else None
    server = HealthServer(probe, metrics, depths)
    try:
        await server.start(settings.health_host, settings.health_port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve health checks on {settings.health_host}:{settings.health_port} "
            f"({exc.strerror or exc}); pick a free PIPELINE_HEALTH_PORT or 0 to disable"
        ) from None
    if depths is not None:
        metrics.registry.register(depths)
    log.info("health and metrics on http://%s:%d/ (/healthz /readyz /metrics)",
             settings.health_host, server.port)
    try:
        yield server
    finally:
        await server.close()
        if depths is not None:
            metrics.registry.unregister(depths)
            await depths.close()


def probe_local(settings: PipelineSettings, path: str = "/readyz", timeout_s: float = 3.0) -> int:
    """GET ``path`` of this host's health server; 0 if it answered 200, else 1."""
    if settings.health_port == 0:
        print("PIPELINE_HEALTH_PORT is 0: the health server is disabled", file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.health_host in ("0.0.0.0", "") else settings.health_host
    url = f"http://{host}:{settings.health_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            print(response.read().decode(errors="replace").strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace").strip(), file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "/readyz"
    sys.exit(probe_local(PipelineSettings(), path))
