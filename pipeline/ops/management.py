"""A small client for the RabbitMQ management HTTP API.

Used by ``pipeline status``, ``pipeline topology check`` and the demo: queue
depths and rates, consumers attached, and the policies that may override
our queue arguments. Credentials come from ``PIPELINE_MANAGEMENT_URL`` and
are never printed.
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pipeline.errors import BrokerUnreachableError, ConfigurationError, CredentialsRefusedError
from pipeline.ops.protocols import ManagementApi
from pipeline.settings import PipelineSettings, redact_url

# httpx imports its own command-line client (httpx._main: click, rich and pygments,
# about 5 MB of a worker's memory, docs/performance.md) whenever those are installed, as
# they are beside our CLI. We never run it, and httpx treats that import as optional:
# marking the module absent makes it skip it. Harmless if httpx was imported already.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402


class ManagementNotFoundError(ConfigurationError):
    """The management API has no such object (a vhost, queue or user that does not exist)."""


def open_management(settings: PipelineSettings, timeout_s: float = 5.0) -> ManagementApi:
    """The management API of the broker ``settings`` name.

    For ``memory://`` that is the in-process broker's own answer (there is
    no HTTP API, no policies and no UI); otherwise ``ManagementClient``.
    """
    if settings.is_memory:
        # Imported here: it imports this module (ManagementNotFoundError).
        from pipeline.memory.management import MemoryManagement

        return MemoryManagement(settings)
    return ManagementClient(settings, timeout_s)


class ManagementClient:
    """``async with ManagementClient(settings) as api: await api.queues()``."""

    def __init__(self, settings: PipelineSettings, timeout_s: float = 5.0,
                 ca_file: Path | None = None) -> None:
        # One entry per node of PIPELINE_MANAGEMENT_URL; requests go to the
        # node that answered last and move on to the next when it does not.
        self._nodes = [_Node(url) for url in settings.management_urls]
        self._current = 0
        self.base_url = self._nodes[0].base_url
        self.ui_url = self.base_url + "/"
        self.vhost = settings.vhost
        self._safe_url = ",".join(redact_url(url) for url in settings.management_urls)
        # ca_file: verify an https:// API against this CA (a private one) instead of
        # the system's; verification is never turned off.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True)
        self._client = httpx.AsyncClient(timeout=timeout_s, verify=verify)

    async def __aenter__(self) -> ManagementClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        """GET ``/api{path}`` as JSON; errors as in ``request``."""
        response = await self.request("GET", path, params=params or None)
        return response.json()

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request to ``/api{path}``; every failure becomes one sentence.

        Raises ``BrokerUnreachableError`` when the API does not answer,
        ``CredentialsRefusedError`` (one of them) when it refuses the
        credentials or the user has no management tag, ``ManagementNotFoundError`` on 404 and
        ``ConfigurationError`` when the user may not do this (403) or the
        API refuses the request. Request bodies are never quoted: they may
        hold passwords.
        """
        response = await self._send(method, path, json, params)
        status = response.status_code
        what = f"{method} {path.split('?')[0]}"
        if status == 401:
            raise CredentialsRefusedError(
                f"the management API at {self._safe_url} refused the credentials in "
                "PIPELINE_MANAGEMENT_URL"
            )
        if status == 403:
            raise ConfigurationError(
                f"the user in PIPELINE_MANAGEMENT_URL may not {what} (HTTP 403); it needs a "
                "management tag that allows it (administrator to manage users)"
            )
        if status == 404:
            raise ManagementNotFoundError(f"the management API has nothing at {what} (HTTP 404)")
        if status >= 400:
            raise ConfigurationError(f"the management API refused {what}: HTTP {status}")
        return response

    async def _send(
        self, method: str, path: str, json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        # A node that does not answer (down, restarting) is skipped; an
        # answer of any status, even an error, ends the search.
        count = len(self._nodes)
        failure: httpx.HTTPError | None = None
        for step in range(count):
            node = self._nodes[(self._current + step) % count]
            try:
                response = await self._client.request(
                    method, node.base_url + "/api" + path, json=json, params=params,
                    auth=node.auth,
                )
            except httpx.HTTPError as exc:
                failure = exc
                continue
            self._current = (self._current + step) % count
            self.base_url = node.base_url
            return response
        raise BrokerUnreachableError(
            f"the RabbitMQ management API at {self._safe_url} did not answer "
            f"({type(failure).__name__}); enable it with "
            "`rabbitmq-plugins enable rabbitmq_management` or set PIPELINE_MANAGEMENT_URL"
        ) from None

    @property
    def node_urls(self) -> list[str]:
        """The API's base URL on each node, without credentials."""
        return [node.base_url for node in self._nodes]

    @property
    def _vhost_path(self) -> str:
        return quote(self.vhost, safe="")

    async def queues(self) -> list[dict[str, Any]]:
        """Every queue of our vhost with depth, consumers, arguments, policy and rates."""
        result: list[dict[str, Any]] = await self.get(f"/queues/{self._vhost_path}")
        return result

    async def queue(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.get(
            f"/queues/{self._vhost_path}/{quote(name, safe='')}"
        )
        return result

    async def policies(self) -> list[dict[str, Any]]:
        """User policies and operator policies that apply to our vhost."""
        user: list[dict[str, Any]] = await self.get(f"/policies/{self._vhost_path}")
        operator: list[dict[str, Any]] = await self.get(
            f"/operator-policies/{self._vhost_path}"
        )
        return [*({**p, "kind": "policy"} for p in user),
                *({**p, "kind": "operator-policy"} for p in operator)]

    async def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.get("/overview")
        return result


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Node:
    """One node's management API: base URL without credentials, and the credentials."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        netloc = f"{parts.hostname}:{parts.port or 15672}"
        self.base_url = urlunsplit(parts._replace(netloc=netloc, path="")).rstrip("/")
        self.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
