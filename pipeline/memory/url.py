"""``memory://`` URLs: which in-process broker and which vhost a connection means.

    memory://                 the process's default broker, vhost "/"
    memory:///orders          the default broker, vhost "orders"
    memory://tests-1/         a separate broker named "tests-1" (TestPipeline makes one per run)

Credentials in the URL are accepted and ignored: the in-memory broker has no users.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from pipeline.errors import ConfigurationError

SCHEME = "memory"
# What aiormq is given: it needs an amqp:// URL to parse, though our transport
# never opens a socket to this host.
_AMQP_HOST = "memory"


def is_memory_url(url: str) -> bool:
    """True for ``memory://...``: the in-process broker instead of RabbitMQ."""
    return url.startswith(f"{SCHEME}://")


@dataclass(frozen=True)
class MemoryAddress:
    """A broker of this process (``node``) and one of its vhosts."""

    node: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> MemoryAddress:
        """Read ``memory://[NODE][/VHOST]``; ``ConfigurationError`` says what is wrong."""
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise ConfigurationError(f"{url!r} is not a memory:// URL")
        node = parts.netloc.rpartition("@")[2]
        if ":" in node:
            raise ConfigurationError(
                f"memory:// URLs take no port ({node!r}): use memory://NAME/VHOST"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(node, unquote(path) if path else "/")

    @property
    def amqp_url(self) -> str:
        """The URL handed to aio-pika and aiormq (guest credentials, this vhost)."""
        vhost = "" if self.vhost == "/" else quote(self.vhost, safe="")
        return f"amqp://guest:guest@{_AMQP_HOST}/{vhost}"

    def __str__(self) -> str:
        vhost = "" if self.vhost == "/" else quote(self.vhost, safe="")
        return f"{SCHEME}://{self.node}/{vhost}"
