"""Running the console's actions as the user who asked, each recorded in the audit list.

Every action is recorded first, then runs in the background with the user's
own settings (so the broker decides whether it may), then records its
outcome: ``done``, ``failed``, or ``refused`` when the broker refused the
user. Replays and purges are the store's own ``replay`` and ``purge`` (the
CLI's code), one at a time through the ``StoreGate``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pipeline import store
from pipeline.console import audit
from pipeline.console.auth import may_write_default_exchange
from pipeline.console.protocols import FlowControl
from pipeline.console.session import Session
from pipeline.console.store_gate import StoreGate
from pipeline.control.commands import CancelEvent
from pipeline.control.log import send_command
from pipeline.errors import CredentialsRefusedError, PipelineError
from pipeline.ledger.cancel import plan_cancel
from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.store import Selection

log = logging.getLogger(__name__)

ACCESS_REFUSED = "ACCESS_REFUSED"  # RabbitMQ's reply text for a permission it refused


class RefusedError(PipelineError):
    """The broker refused the user this action."""


@dataclass(frozen=True)
class Request:
    """Who asked for an action, from where."""

    session: Session
    client: str | None


def _is_refusal(error: BaseException | str) -> bool:
    return isinstance(error, CredentialsRefusedError | RefusedError) or ACCESS_REFUSED in str(error)


class ActionRunner:
    """Starts actions in the background; ``progress`` says how far running replays got."""

    def __init__(self, audit_log: audit.AuditLog, gate: StoreGate, flow: FlowControl) -> None:
        self.audit = audit_log
        self.gate = gate
        self.flow = flow
        self.progress: dict[int, tuple[int, int]] = {}  # audit id -> (done, total)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, who: Request, action: str, target: str, params: dict[str, Any],
                    work: Callable[[int], Awaitable[str]]) -> int:
        """Record the action, run ``work(record_id)`` in the background; return the record id."""
        record_id = await self.audit.start(who.session.user, who.client, action, target, params)
        log.info("console: %s started %s on %s (audit #%d)", who.session.user, action, target,
                 record_id)
        task = asyncio.create_task(self._run(record_id, who.session.user, action, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record_id

    async def _run(self, record_id: int, user: str, action: str,
                   work: Callable[[int], Awaitable[str]]) -> None:
        try:
            result = await work(record_id)
            state = audit.DONE
        except asyncio.CancelledError:
            await self.audit.finish(record_id, audit.FAILED, "the console stopped while it ran; "
                                    "what was not done yet stays as it was")
            raise
        except Exception as exc:
            state = audit.REFUSED if _is_refusal(exc) else audit.FAILED
            result = str(exc) if isinstance(exc, PipelineError) else (
                f"unexpected {type(exc).__name__}; see the console's log")
            if state == audit.FAILED and not isinstance(exc, PipelineError):
                log.exception("console action %s (audit #%d) failed", action, record_id)
        finally:
            self.progress.pop(record_id, None)
        log.info("console: %s's %s (audit #%d) %s: %s", user, action, record_id, state, result)
        await self.audit.finish(record_id, state, result)

    async def wait(self) -> None:
        """Let running actions finish (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Give running actions ``timeout_s`` to end, then cancel them (recorded as stopped)."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def replay(self, who: Request, target: str, selection: Selection,
                     rate_per_s: float | None) -> int:
        async def work(record_id: int) -> str:
            def advance(done: int, total: int) -> None:
                self.progress[record_id] = (done, total)

            async with self.gate.hold(f"a replay by {who.session.user} (audit #{record_id})"):
                report = await store.replay(who.session.acting, selection,
                                            rate_per_s=rate_per_s, progress=advance)
            return replay_result(report)

        return await self.start(who, "replay", target, {"rate_per_s": rate_per_s}, work)

    async def purge(self, who: Request, target: str, selection: Selection) -> int:
        async def work(record_id: int) -> str:
            acting = who.session.acting
            # RabbitMQ counts deleting from a queue as reading it: ask the broker
            # whether this user may replay, and purge only for users who may.
            if not await may_write_default_exchange(acting):
                raise RefusedError(
                    f"the broker refused {who.session.user!r} write on amq.default: a user who "
                    "may not replay may not purge either (docs/console.md)")
            async with self.gate.hold(f"a purge by {who.session.user} (audit #{record_id})"):
                purged = await store.purge(acting, selection)
            return f"purged {len(purged)} event(s) from the dead-letter store"

        return await self.start(who, "purge", target, {}, work)

    async def cancel(self, who: Request, event_id: str, consumer: str | None) -> int:
        async def work(record_id: int) -> str:
            acting = who.session.acting
            query = LedgerQuery(engine_for(acting.ledger_url))
            try:
                status = await asyncio.to_thread(query.status, event_id)
            finally:
                query.engine.dispose()
            plan = plan_cancel(event_id, status, consumer)
            for name in plan.cancel:
                await send_command(acting, CancelEvent(
                    event_id=event_id, consumer=name, issued_by=f"{who.session.user} (console)"))
            done = "".join(f"; {n} had already handled it ({s})" for n, s in sorted(
                plan.done.items()))
            return f"cancelled in {', '.join(plan.cancel)}{done}"

        target = f"event {event_id}" + (f" in {consumer}" if consumer else "")
        return await self.start(who, "cancel", target, {"consumer": consumer}, work)

    async def set_flow(self, who: Request, consumer: str, pause: bool) -> int:
        async def work(record_id: int) -> str:
            act = self.flow.pause if pause else self.flow.resume
            return await act(who.session.acting, consumer, who.session.user)

        return await self.start(who, "pause" if pause else "resume", f"consumer {consumer}",
                                {}, work)


def replay_result(report: store.ReplayReport) -> str:
    """One sentence; raises ``RefusedError`` when the broker refused every replay."""
    replayed, failed = len(report.replayed), report.failed
    if failed and not replayed and all(_is_refusal(error) for _, error in failed):
        raise RefusedError(
            f"the broker refused the replay of {len(failed)} event(s) (they stay in the "
            f"store): {failed[0][1]}")
    text = f"replayed {replayed} event(s) to their consumers' queues"
    if failed:
        text += (f"; {len(failed)} not replayed (still in the store), first: "
                 f"{failed[0][0].message_id}: {failed[0][1]}")
        raise PipelineError(text)
    if not replayed:
        return "nothing to replay: the selection matched no stored event"
    return text
