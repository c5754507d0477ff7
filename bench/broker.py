"""The broker a benchmark run talks to, and the vhost that isolates the run."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import httpx

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MANAGEMENT = "http://guest:guest@127.0.0.1:15672/"


@dataclass(frozen=True)
class BrokerTarget:
    """A broker's AMQP base URL (its vhost path is ignored) and management API URL."""

    amqp_url: str = DEFAULT_AMQP
    management_url: str = DEFAULT_MANAGEMENT

    def amqp_url_for(self, vhost: str) -> str:
        parts = urlsplit(self.amqp_url)
        return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))

    def _api(self) -> httpx.Client:
        # Imported here: a memory child process (bench.memory) builds a Bench but never
        # calls the API, and httpx loads click, rich and pygments (7 MB of RSS) with it.
        import httpx

        parts = urlsplit(self.management_url)
        base = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 15672}"))
        return httpx.Client(
            base_url=base.rstrip("/") + "/api",
            auth=(parts.username or "guest", parts.password or "guest"),
            timeout=10,
        )

    def create_vhost(self, name: str) -> None:
        """Create ``name`` and give the AMQP user full rights on it (HTTP errors raise)."""
        user = urlsplit(self.amqp_url).username or "guest"
        with self._api() as api:
            api.put(f"/vhosts/{quote(name, safe='')}").raise_for_status()
            api.put(
                f"/permissions/{quote(name, safe='')}/{user}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            ).raise_for_status()

    def delete_vhost(self, name: str) -> None:
        with self._api() as api:
            response = api.delete(f"/vhosts/{quote(name, safe='')}")
            if response.status_code not in (204, 404):
                response.raise_for_status()

    def facts(self) -> dict[str, Any]:
        """Broker and Erlang versions, for the report (empty values if the API fails)."""
        import httpx

        try:
            with self._api() as api:
                overview = api.get("/overview").raise_for_status().json()
        except httpx.HTTPError:
            return {"rabbitmq": None, "erlang": None}
        return {
            "rabbitmq": overview.get("rabbitmq_version"),
            "erlang": overview.get("erlang_version"),
        }


@contextlib.contextmanager
def isolated_vhost(target: BrokerTarget, given: str | None = None) -> Iterator[str]:
    """A vhost for this run: ``given`` as it is (the caller owns it), else a new one.

    A vhost we create is deleted afterwards, with everything in it, even when
    the run fails half-way.
    """
    if given:
        yield given
        return
    name = f"bench-{uuid.uuid4().hex[:8]}"
    target.create_vhost(name)
    try:
        yield name
    finally:
        target.delete_vhost(name)
