"""What happens to a connection after it is open: lost, restored, blocked, unblocked.

aio-pika's robust connection reconnects at a fixed interval and logs each
step through its own (quiet) logger. We want one line an operator can act
on for each change, and a wait that grows with the outage so a broker that
is down for minutes is not hammered by every consumer.

RabbitMQ blocks publishing connections while a memory or disk alarm is on
(https://www.rabbitmq.com/docs/connection-blocked); the broker names the
alarm in ``connection.blocked``. aiormq handles that frame without a public
hook, so ``watch`` wraps its handlers on each underlying connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

log = logging.getLogger(__name__)

# The longest wait between two reconnect attempts, however long the outage.
RECONNECT_MAX_INTERVAL_S = 15.0


class BackoffRobustConnection(RobustConnection):
    """A robust connection whose reconnect wait is half the outage so far.

    The wait starts at ``reconnect_interval`` (``PIPELINE_RECONNECT_INTERVAL_S``)
    and grows up to ``RECONNECT_MAX_INTERVAL_S``. It is computed from the
    clock rather than counted per attempt, so reading it has no side effect.
    """

    lost_at: float | None = None
    _base_interval_s: float = 1.0
    # The cluster's nodes (PIPELINE_AMQP_URL as a list), tried in turn: the
    # connection moves to the next node on each reconnect attempt.
    _nodes: tuple[URL, ...] = ()
    _node_index: int = 0
    _transport: Any = None
    _transport_resets: int = 0

    def use_nodes(self, urls: tuple[str, ...], first: int) -> None:
        """Reconnect through ``urls`` in turn, starting after node ``first`` (connected now)."""
        self._nodes = tuple(URL(url) for url in urls)
        self._node_index = first

    @property
    def node_address(self) -> str:
        """``host:port`` of the node this connection uses (or tries) now."""
        url = self.url
        return f"{url.host}:{url.port}"

    @property
    def url(self) -> URL:
        if self._nodes:
            return self._nodes[self._node_index]
        return self._url

    @url.setter
    def url(self, value: URL) -> None:
        self._url = value
        if self._nodes:  # update_secret: the new password goes to every node
            self._nodes = tuple(node.with_password(value.password) for node in self._nodes)

    # aio-pika's reconnect loop clears ``transport`` right before each attempt
    # and reads ``url`` in the attempt; it has no hook between the two. The
    # first two clears are __init__ and the first attempt (on the node that
    # answered); every later one is a reconnect after a loss or a failed
    # attempt, which must go to the next node. Pinned by
    # tests/faults/test_cluster.py and tests/integration/test_node_list.py.
    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None and not getattr(self, "_close_called", False):
            self._transport_resets += 1
            if self._transport_resets > 2 and self._nodes:
                self._node_index = (self._node_index + 1) % len(self._nodes)
        self._transport = value

    @property
    def reconnect_interval(self) -> float:
        if self.lost_at is None:
            return self._base_interval_s
        outage_s = time.monotonic() - self.lost_at
        return min(RECONNECT_MAX_INTERVAL_S, max(self._base_interval_s, outage_s / 2))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval_s = float(value)


def watch(
    connection: AbstractRobustConnection, name: str, address: str
) -> AbstractRobustConnection:
    """Log loss, restore and flow-control changes of ``connection``; return it.

    ``address`` names the broker in the lines; a connection that moves between
    the nodes of a cluster names the node it lost or reached instead.
    """

    def node() -> str:
        if isinstance(connection, BackoffRobustConnection) and connection._nodes:
            return connection.node_address
        return address

    def on_close(_: Any, exc: BaseException | None = None) -> None:
        if getattr(connection, "close_called", False) or connection.is_closed:
            return  # closed on purpose
        if isinstance(connection, BackoffRobustConnection):
            if connection.lost_at is not None:
                return  # a failed reconnect attempt: the outage was reported once
            connection.lost_at = time.monotonic()
        log.warning(
            "connection %s to %s lost (%s); reconnecting with waits that grow with the "
            "outage (up to %.0fs)%s; publishes not yet confirmed raise PublishError",
            name, node(), _describe(exc), RECONNECT_MAX_INTERVAL_S,
            _next_nodes(connection),
        )

    def on_reconnect(_: Any) -> None:
        outage = ""
        if isinstance(connection, BackoffRobustConnection) and connection.lost_at is not None:
            outage = f" after {time.monotonic() - connection.lost_at:.1f}s"
            connection.lost_at = None
        log.warning(
            "connection %s to %s restored%s; channels, queues and consumers re-declared",
            name, node(), outage,
        )
        _watch_flow_control(connection, name, address)

    connection.close_callbacks.add(on_close)
    connection.reconnect_callbacks.add(on_reconnect)
    _watch_flow_control(connection, name, address)
    return connection


def _watch_flow_control(connection: AbstractRobustConnection, name: str, address: str) -> None:
    transport = connection.transport
    amqp = getattr(transport, "connection", None)
    blocked_attr = "_Connection__handle_connection_blocked"
    unblocked_attr = "_Connection__handle_connection_unblocked"
    if amqp is None or not hasattr(amqp, blocked_attr) or not hasattr(amqp, unblocked_attr):
        log.debug("aiormq has no blocked/unblocked handlers to watch; alarms are not logged")
        return
    blocked_since: list[float] = []

    async def on_blocked(frame: Any) -> None:
        blocked_since[:] = [time.monotonic()]
        log.warning(
            "broker %s blocked publishing on connection %s: %s alarm (%s); publishes wait "
            "until it clears and raise ConfirmTimeoutError after PIPELINE_CONFIRM_TIMEOUT_S",
            address, name, _alarm_name(getattr(frame, "reason", "")),
            getattr(frame, "reason", "") or "no reason given",
        )

    async def on_unblocked(frame: Any) -> None:
        held = f" after {time.monotonic() - blocked_since[0]:.1f}s" if blocked_since else ""
        blocked_since.clear()
        log.warning("broker %s unblocked connection %s%s; publishing resumes", address, name,
                    held)

    setattr(amqp, blocked_attr, _after(getattr(amqp, blocked_attr), on_blocked))
    setattr(amqp, unblocked_attr, _after(getattr(amqp, unblocked_attr), on_unblocked))


def _after(
    original: Callable[[Any], Awaitable[None]], extra: Callable[[Any], Awaitable[None]]
) -> Callable[[Any], Awaitable[None]]:
    async def handler(frame: Any) -> None:
        await original(frame)
        try:
            await extra(frame)
        except Exception:  # logging must never break the connection's reader
            log.debug("flow-control log line failed", exc_info=True)

    return handler


def _next_nodes(connection: AbstractRobustConnection) -> str:
    if isinstance(connection, BackoffRobustConnection) and len(connection._nodes) > 1:
        return ", trying the other nodes in turn"
    return ""


def _alarm_name(reason: str) -> str:
    text = reason.lower()
    if "memory" in text:
        return "memory"
    if "disk" in text:
        return "disk"
    return "resource"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed by the broker"
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
