"""Group equal failures into one notice per window, so a storm sends a handful.

Failures with the same (consumer, event type, error type) are one *group*.
The first failure of a quiet group is sent at once. Later ones inside the
window (``PIPELINE_NOTIFIER_GROUP_WINDOW_S``, default 60 s) are counted and
sent as ONE notice with the count when the window ends; while a storm goes
on, that is one notice per window.

Nothing is acked before its notice went out: ``submit`` returns only when
the notice that covers this failure was delivered, and raises if it was
not (the admin notifier then parks the dead letter). So the notifier's
prefetch bounds how many failures one window can hold, and ``max_held_bytes``
how many bytes: a dead letter that would take the held deliveries past it
ends every open window at once (their counted notices go out now), so a
storm of large dead letters cannot grow the process without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from consumers.admin_notifier.notice import DeadLetterNotice, GroupKey
from consumers.admin_notifier.protocols import Notifier

log = logging.getLogger(__name__)


@dataclass
class _Group:
    waiting: list[asyncio.Future[None]] = field(default_factory=list)
    latest: DeadLetterNotice | None = None
    timer: asyncio.Task[None] | None = None
    # The window's send in progress. Its own task, so that stopping the timer
    # (``close``) cannot interrupt a send halfway and strand its senders.
    flush: asyncio.Task[None] | None = None


class GroupingNotifier:
    """Sends through ``sink``: at once for a quiet group, then one counted notice per window."""

    def __init__(self, sink: Notifier, window_s: float,
                 max_held_bytes: int | None = None) -> None:
        self.sink = sink
        self.window_s = window_s
        self.max_held_bytes = max_held_bytes
        self.held_bytes = 0  # of the deliveries waiting for their window's notice
        self.early_flushes = 0
        self._groups: dict[GroupKey, _Group] = {}
        self._early: set[asyncio.Task[None]] = set()  # sends of windows ended early

    @property
    def open_groups(self) -> int:
        return len(self._groups)

    async def submit(self, notice: DeadLetterNotice, size: int = 0) -> None:
        """Return once a notice covering this one was delivered; raise if it was not.

        ``size``: the bytes its delivery holds while it waits (body and headers).
        """
        key = notice.group_key
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
            group.timer = asyncio.create_task(self._run_window(key, group))
            await self.sink.send(notice, 1)
            return
        if self.max_held_bytes is not None and self.held_bytes + size > self.max_held_bytes:
            self._end_windows_now()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group.waiting.append(done)
        group.latest = notice
        self.held_bytes += size
        try:
            await done
        finally:
            self.held_bytes -= size

    def _end_windows_now(self) -> None:
        """Send every open window's counted notice now: the held bytes hit their cap."""
        self.early_flushes += 1
        log.warning("dead letters waiting for their notices hold %d bytes (cap %d, "
                    "PIPELINE_NOTIFIER_MAX_HELD_BYTES): sending the open windows' notices now",
                    self.held_bytes, self.max_held_bytes)
        for key, group in self._groups.items():
            if group.waiting and group.latest is not None:
                waiting, latest = group.waiting, group.latest
                group.waiting, group.latest = [], None
                task = asyncio.create_task(self._flush(key, waiting, latest))
                self._early.add(task)
                task.add_done_callback(self._early.discard)

    async def _run_window(self, key: GroupKey, group: _Group) -> None:
        while True:
            await asyncio.sleep(self.window_s)
            waiting, latest = group.waiting, group.latest
            if not waiting or latest is None:
                del self._groups[key]  # a quiet window closes the group
                return
            group.waiting, group.latest = [], None
            group.flush = asyncio.create_task(self._flush(key, waiting, latest))
            await asyncio.shield(group.flush)
            group.flush = None

    async def _flush(
        self, key: GroupKey, waiting: list[asyncio.Future[None]], latest: DeadLetterNotice
    ) -> None:
        try:
            await self.sink.send(latest, len(waiting))
        except (Exception, asyncio.CancelledError) as exc:
            # Cancelled too (the loop is going away): every sender gets an answer,
            # so each dead letter is settled (parked) instead of left unacked.
            log.error("grouped notice for %s x%d was not delivered: %s; the dead letters "
                      "it covers are parked", key, len(waiting), exc or type(exc).__name__)
            failed = exc if isinstance(exc, Exception) else RuntimeError(
                "the notifier stopped while sending this notice")
            for future in waiting:
                if not future.done():
                    future.set_exception(failed)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        """Flush every open window now (on shutdown); pending senders get their answer.

        A window's send already in progress is finished, not cut off.
        """
        for key, group in list(self._groups.items()):
            if group.timer is not None:
                group.timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await group.timer
            if group.flush is not None:
                log.info("notifier stopping while a notice for %s is being sent; finishing "
                         "it first", key)
                with contextlib.suppress(asyncio.CancelledError):
                    await group.flush
            if group.waiting and group.latest is not None:
                await self._flush(key, group.waiting, group.latest)
        self._groups.clear()
