"""Rungs the pipeline no longer declares: found, reported, deleted once empty.

A rung's name carries its place in the consumer's ladder and its delay
(``pipeline.billing.retry.02.5s``, topology/naming.py). Rungs named before
positions existed (``pipeline.billing.retry.5s``), or left behind by a ladder
change, are declared no more but may still hold retries. Each one still
returns every message to its consumer's queue when the queue TTL expires
(its own dead-letter arguments), so nothing has to move: such a rung drains
on its own within one TTL, and ``pipeline topology migrate`` deletes it once
it is empty. Moving the messages instead would restart their wait and take a
confirmed copy of each; letting them drain delays none longer than its rung
(docs/retries.md, "Rung names").

The delete is checked on AMQP (a passive declare counts exactly; the
management API's count lags by its stats interval) and needs every worker to
run the new names first: an old worker still sends its retries to the old
rungs, and a copy arriving between the check and the delete would be lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from pipeline.connection import connect
from pipeline.ops.management import open_management
from pipeline.settings import PipelineSettings
from topology import Topology, naming

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often ``retire_rungs(..., wait=True)`` counts a draining rung
MARGIN_S = 30.0  # waited past the longest TTL before giving up on a rung


@dataclass(frozen=True)
class RetiredRung:
    """A rung on the broker that the topology no longer declares."""

    name: str
    consumer: str
    messages: int  # as the management API last counted them
    ttl_ms: int | None
    returns_home: bool  # its dead-letter arguments lead back to pipeline.<consumer>

    @property
    def drains(self) -> bool:
        """True when its messages go back to its consumer's queue on their own."""
        return self.returns_home and self.ttl_ms is not None

    def empty_by(self, now: float) -> float | None:
        """When it is empty at the latest (epoch seconds), if nothing is sent to it meanwhile.

        Every message waits the queue TTL from when it arrived, which was
        before ``now``; None for a rung that does not drain on its own.
        """
        if not self.drains or self.ttl_ms is None:
            return None
        return now if self.messages == 0 else now + self.ttl_ms / 1000

    def action(self, now: float) -> str:
        """What ``topology migrate`` does with it, as one phrase for a table."""
        if not self.drains:
            home = naming.consumer_queue(self.consumer)
            return (f"kept: it does not return its messages to {home} "
                    "(move or purge them by hand, then delete it)")
        if self.messages == 0:
            return "delete (empty)"
        due = time.strftime("%H:%M:%S UTC", time.gmtime(self.empty_by(now) or now))
        return (f"wait: drains into {naming.consumer_queue(self.consumer)} by {due}, "
                "then run `pipeline topology migrate` again (or use --wait)")


def find_retired_rungs(
    topology: Topology, listed: Iterable[Mapping[str, Any]],
) -> list[RetiredRung]:
    """Rungs of ``topology``'s consumers in the broker's queue listing that it does not declare.

    ``listed``: queue objects of ``/api/queues/VHOST`` (name, arguments, messages).
    A queue of a consumer the topology does not know is left alone.
    """
    declared = {q.name for q in topology.queues}
    consumers = {q.consumer for q in topology.queues if q.role == "consumer"}
    retired = []
    for queue in listed:
        name = str(queue.get("name", ""))
        rung = naming.parse_retry_queue(name)
        if rung is None or name in declared or rung.consumer not in consumers:
            continue
        arguments = queue.get("arguments") or {}
        ttl = arguments.get("x-message-ttl")
        home = (arguments.get("x-dead-letter-exchange") == ""
                and arguments.get("x-dead-letter-routing-key")
                == naming.consumer_queue(rung.consumer))
        retired.append(RetiredRung(name, rung.consumer, int(queue.get("messages") or 0),
                                   ttl if isinstance(ttl, int) else None, home))
    return sorted(retired, key=lambda r: r.name)


async def read_retired_rungs(settings: PipelineSettings, topology: Topology) -> list[RetiredRung]:
    """``find_retired_rungs`` on the vhost of ``settings``, each counted exactly.

    The management API finds them (names, arguments); AMQP counts them, since
    the API's counts lag by its statistics interval (5 s by default). Raises
    what the API client and ``connect`` raise.
    """
    async with open_management(settings) as api:
        found = find_retired_rungs(topology, await api.queues())
    if not found:
        return found
    connection = await connect(settings, f"{settings.service_name}.retired-rungs")
    try:
        counted = [(rung, await _count(connection, rung.name)) for rung in found]
    finally:
        await connection.close()
    return [replace(rung, messages=left) for rung, left in counted if left is not None]


@dataclass(frozen=True)
class Retirement:
    """What ``retire_rungs`` did: rungs deleted, and those left with their message counts."""

    deleted: tuple[str, ...]
    waiting: tuple[tuple[str, int], ...]


async def retire_rungs(
    connection: AbstractRobustConnection, rungs: Iterable[RetiredRung], wait: bool = False,
) -> Retirement:
    """Delete every rung of ``rungs`` that drains on its own and is empty now.

    With ``wait``, first wait for each to drain, up to its TTL and
    ``MARGIN_S`` more. A rung that does not drain on its own is never
    touched. Raises what aio-pika raises when the broker refuses.
    """
    deleted: list[str] = []
    waiting: list[tuple[str, int]] = []
    for rung in (r for r in rungs if r.drains):
        deadline = time.monotonic() + (rung.ttl_ms or 0) / 1000 + MARGIN_S
        left = await _count(connection, rung.name)
        while wait and left and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            left = await _count(connection, rung.name)
        if left is None:
            continue  # already gone
        if left:
            waiting.append((rung.name, left))
            continue
        await _delete(connection, rung.name)
        deleted.append(rung.name)
        log.warning("deleted retired rung %s (empty; the topology declares %s's rungs under "
                    "their new names)", rung.name, rung.consumer)
    return Retirement(tuple(deleted), tuple(waiting))


async def _count(connection: AbstractRobustConnection, name: str) -> int | None:
    # A channel per look: a passive declare of a missing queue closes its
    # channel, and aio-pika's robust channel answered a second passive
    # declare of the same queue with the first one's count.
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count or 0
    except ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _delete(connection: AbstractRobustConnection, name: str) -> None:
    # Quorum queues refuse queue.delete's if-empty flag: counted just before.
    channel = await connection.channel()
    try:
        await channel.queue_delete(name)
    finally:
        if not channel.is_closed:
            await channel.close()
