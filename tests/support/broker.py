"""Find a real broker for the tests, and give each test its own vhost.

Order: PIPELINE_TEST_AMQP_URL (+ PIPELINE_TEST_MANAGEMENT_URL), then the
local broker on 127.0.0.1:5672, then a testcontainers RabbitMQ where Docker
runs. Otherwise the run FAILS with a message saying how to get a broker:
a messaging test suite that skips is green with nothing tested.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bench.broker import BrokerTarget

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_MANAGEMENT = "http://guest:guest@127.0.0.1:15672/"


class NoBrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerEndpoint(BrokerTarget):
    """A broker's AMQP base URL (no vhost) and management API URL.

    Vhost creation and deletion are the benchmark's (``bench.broker``): both
    isolate a run in its own vhost the same way.
    """

    def api(self) -> httpx.Client:
        """A client for the management HTTP API (``/api`` is the base)."""
        return self._api()


def vhost_name(test_id: str) -> str:
    """A unique, readable vhost for one test (shown in the management UI)."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", test_id.split("::")[-1]).strip("-")[:60]
    return f"test-{slug}-{uuid.uuid4().hex[:6]}"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port),
                                      timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def find_broker() -> Iterator[BrokerEndpoint]:
    explicit = os.environ.get("PIPELINE_TEST_AMQP_URL")
    if explicit:
        management = os.environ.get("PIPELINE_TEST_MANAGEMENT_URL", LOCAL_MANAGEMENT)
        yield BrokerEndpoint(explicit, management)
        return
    if _reachable(LOCAL_AMQP, 5672):
        if not _reachable(LOCAL_MANAGEMENT, 15672):
            raise NoBrokerError(
                "RabbitMQ answers on 127.0.0.1:5672 but its management API on :15672 does not; "
                "run `rabbitmq-plugins enable rabbitmq_management` (the tests create a vhost "
                "per test through it)"
            )
        yield BrokerEndpoint(LOCAL_AMQP, LOCAL_MANAGEMENT)
        return
    with _container() as endpoint:
        yield endpoint


@contextlib.contextmanager
def _container() -> Iterator[BrokerEndpoint]:
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:4.1-management")
        container.with_exposed_ports(5672, 15672)
        container.start()
    except Exception as exc:
        raise NoBrokerError(
            "no RabbitMQ for the tests: nothing on 127.0.0.1:5672, PIPELINE_TEST_AMQP_URL is "
            f"unset, and testcontainers could not start one ({type(exc).__name__}: {exc}). "
            "Start one with `rabbitmq-server -detached` or `docker compose up -d rabbitmq`"
        ) from None
    try:
        host = container.get_container_host_ip()
        amqp = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/"
        management = f"http://guest:guest@{host}:{container.get_exposed_port(15672)}/"
        yield BrokerEndpoint(amqp, management)
    finally:
        container.stop()
