"""Reading the dead-letter store page by page: a *pass* over every stored message.

``pipeline.dead-letter.store`` is a quorum queue nobody consumes (replicated:
it survives the loss of a node). A queue can only be read from its head, and
reading must never lose, reorder or duplicate a message. Two facts of quorum
queues shape a pass:

* a consumer holds at most its prefetch unacked (65 535 at most; 3.10 hands
  an unlimited consumer 2 000), so holding the store cannot reach entry 100 000;
* returned messages come back in order only when one consumer's messages
  return together (channel close); returns from several consumers, or
  ``nack``s, are batched by the broker and come back reordered (tried on
  3.10.8 with 140 messages in pages of 40). And RabbitMQ 4.0-4.2 count every
  return toward the delivery limit (default 20 on 4.x).

So a pass **moves** what it keeps: it takes messages from the head ``PAGE`` at
a time (bounded memory), the caller acks what it settles (a replay, after its
copy is confirmed; a purge), and every other message gets a confirmed copy at
the tail before the original is acked. After a full pass the store holds what
it held, in the same order; messages dead-lettered during a pass land among
the kept copies. One pass runs at a time (an exclusive consumer). A pass cut
short loses nothing: what was not acked goes back, and a message copied but
not yet acked is in the store twice (at most ``PAGE`` such duplicates).

Moving needs write permission on the default exchange (the operator role
has it). A user with read permission only (a monitor) gets a *held* pass
instead: one consumer holds up to ``MAX_SCAN`` messages and closing the
channel returns them in order; it sees the first ``MAX_SCAN`` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aio_pika import Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelLockedResource,
    ChannelNotFoundEntity,
)

from pipeline.connection import connect
from pipeline.errors import ConfigurationError
from pipeline.publish.outbound import ExchangeCache, acknowledge, copy_message, send_confirmed
from pipeline.settings import PipelineSettings
from pipeline.store.entry import StoredMessage
from pipeline.store.selection import Selection
from topology import naming

log = logging.getLogger(__name__)

# Messages in flight at once during a moving pass: the bound on bodies in
# client memory, and how many kept messages go to the tail in one batch.
PAGE = 500
# The most a held pass (read permission only) sees, and a listing returns.
MAX_SCAN = 65535
# A pass stops waiting when the store sends nothing for this long (someone
# else may have taken messages counted at the start).
IDLE_S = 2.0


class StoreInUseError(ConfigurationError):
    """Another pass over the dead-letter store is running (one at a time)."""


@dataclass
class Entry:
    """A selected message during a pass.

    The caller sets ``settled`` when the message is to leave the store (its
    replay copy is confirmed, or it is purged); the pass acks it when the
    page ends. Acking earlier would give the page's consumer credit for one
    more message, which it would then hold past the page.
    """

    stored: StoredMessage
    message: AbstractIncomingMessage
    settled: bool = False


@dataclass
class Scan:
    """One pass over the store, on ``channel`` (publisher confirms on)."""

    channel: AbstractChannel
    queue: AbstractQueue
    total: int  # messages in the store when the pass started
    timeout_s: float
    moves: bool  # False: a held pass (read permission only), up to MAX_SCAN
    exchanges: ExchangeCache = field(init=False)
    _kept: list[AbstractIncomingMessage] = field(default_factory=list)
    _settled: list[AbstractIncomingMessage] = field(default_factory=list)
    settled_count: int = 0  # acked for good (replayed or purged) in this pass

    def __post_init__(self) -> None:
        self.exchanges = ExchangeCache(self.channel)

    @property
    def reach(self) -> int:
        """How many of the store's messages this pass reads."""
        return self.total if self.moves else min(self.total, MAX_SCAN)

    async def entries(self, selection: Selection) -> AsyncIterator[Entry]:
        """Each selected message, in store order, over the whole store (``reach``).

        An entry the caller settled leaves the store; one it left alone
        stays, like every message not selected.
        """
        now = datetime.now(UTC)
        index = 0
        async for message in self._messages():
            stored = StoredMessage.read(message, index)
            index += 1
            settled = False
            if selection.matches(stored, now):
                entry = Entry(stored, message)
                yield entry
                settled = entry.settled
            if settled:
                self._settled.append(message)
            elif self.moves:
                self._kept.append(message)  # copied to the tail when the page ends
        await self.flush()

    async def _messages(self) -> AsyncIterator[AbstractIncomingMessage]:
        remaining = self.reach
        while remaining > 0:
            # A moving pass reads a page per consumer: the consumer gets
            # exactly ``size`` messages (its credit comes back only with acks,
            # sent after it is cancelled), so it never runs into the copies
            # appended at the tail. A held pass is one page of ``reach``.
            size = min(PAGE, remaining) if self.moves else remaining
            taken = 0
            async for message in self._page(size):
                taken += 1
                yield message
            await self.flush()
            remaining -= taken
            if taken < size:
                break  # the store ran dry early: someone else took messages

    async def _page(self, size: int) -> AsyncIterator[AbstractIncomingMessage]:
        arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        await self.channel.set_qos(prefetch_count=size)
        try:
            tag = await self.queue.consume(arrived.put, no_ack=False, exclusive=True)
        except (ChannelAccessRefused, ChannelLockedResource):
            raise StoreInUseError(
                f"another operation is reading {naming.DEAD_LETTER_STORE} right now (one at "
                "a time, so none sees a partial store); try again when it has finished"
            ) from None
        try:
            for _ in range(size):
                try:
                    # wait_for on purpose (the one place, tests/unit/test_cancellation_rule.py):
                    # a message that arrives just as the wait runs out is returned, not left
                    # unread and unacked in this page; a cancellation it may swallow only
                    # lets a pass finish its page.
                    yield await asyncio.wait_for(arrived.get(), IDLE_S)
                except TimeoutError:
                    return
        finally:
            if not self.channel.is_closed:
                await self.queue.cancel(tag)

    async def ack_settled(self) -> None:
        """Ack what the caller settled in this page: it leaves the store."""
        settled, self._settled = self._settled, []
        if self.channel.is_closed:
            return  # the broker took it back: the store keeps it (a duplicate at worst)
        for message in settled:
            if await acknowledge(message, naming.DEAD_LETTER_STORE):
                self.settled_count += 1

    async def flush(self) -> None:
        """End a page: copy the kept messages to the tail (confirmed, in order), then ack.

        Acks the settled messages and the originals of the kept ones.
        """
        await self.ack_settled()
        kept, self._kept = self._kept, []
        if not kept:
            return
        # Sent back to back on one channel, so the queue appends them in this
        # order; each original is acked only once every copy is confirmed.
        await asyncio.gather(*(
            send_confirmed(self.exchanges, "", naming.DEAD_LETTER_STORE,
                           copy_message(message, dict(message.headers or {})), self.timeout_s)
            for message in kept
        ))
        for message in kept:
            await acknowledge(message, naming.DEAD_LETTER_STORE)


async def _may_move(connection: AbstractRobustConnection) -> bool:
    """Whether this user may publish to the default exchange (write permission).

    Probed with a message routed nowhere: the broker drops it, or closes the
    probe's channel with ACCESS_REFUSED.
    """
    channel = await connection.channel(publisher_confirms=True)
    try:
        await channel.default_exchange.publish(Message(b""), routing_key="")
    except ChannelAccessRefused:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
    return True


@contextlib.asynccontextmanager
async def scan(settings: PipelineSettings) -> AsyncIterator[Scan]:
    """A pass over the store; everything not settled stays, in order.

    Raises ``ConfigurationError`` when the store does not exist,
    ``StoreInUseError`` when another pass runs and ``BrokerUnreachableError``
    when the broker cannot be reached.
    """
    connection = await connect(settings, f"{settings.service_name}.dead-letters")
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            queue = await channel.declare_queue(naming.DEAD_LETTER_STORE, passive=True)
        except ChannelNotFoundEntity:
            raise ConfigurationError(
                f"there is no {naming.DEAD_LETTER_STORE} queue in vhost {settings.vhost!r}; "
                "run `pipeline topology apply` first"
            ) from None
        total = queue.declaration_result.message_count or 0
        found = Scan(channel, queue, total, settings.confirm_timeout_s,
                     await _may_move(connection))
        if not found.moves and total > MAX_SCAN:
            log.warning(
                "this user may not write to the default exchange, so the pass holds the "
                "store instead of moving it and reaches only the first %d of %d entries",
                MAX_SCAN, total,
            )
        try:
            yield found
        except BaseException:
            # Cut short (an error, a cancelled replay): what was settled
            # leaves now, so a replayed event is not also kept; the rest of
            # the page is one consumer's, and the close returns it in order.
            await found.ack_settled()
            raise
        await found.flush()
        # Closing the channel returns what a held pass read, in store order.
        await channel.close()
    finally:
        await _close(connection)


async def _close(connection: AbstractRobustConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.close()


async def list_stored(
    settings: PipelineSettings, selection: Selection, limit: int = MAX_SCAN
) -> tuple[list[StoredMessage], int]:
    """The first ``limit`` selected messages in store order, and how many the store holds."""
    shown: list[StoredMessage] = []
    async with scan(settings) as found:
        async for entry in found.entries(selection):
            if len(shown) < limit:
                shown.append(entry.stored)
    return shown, found.total


async def purge(settings: PipelineSettings, selection: Selection) -> list[StoredMessage]:
    """Delete the selected messages from the store for good; return what was deleted."""
    purged: list[StoredMessage] = []
    async with scan(settings) as found:
        async for entry in found.entries(selection):
            entry.settled = True
            purged.append(entry.stored)
    log.warning("purged %d messages from %s", len(purged), naming.DEAD_LETTER_STORE)
    return purged
