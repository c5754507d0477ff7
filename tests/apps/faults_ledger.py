"""``PIPELINE_APP=tests.apps.faults_ledger:app``: the consumer the fault tests break.

Consumer ``ledger`` binds ``faults.#`` and writes each handled key to the
SQLite ledger (``tests/faults/ledger.py``) before its handler returns, so
the test counts what was handled, lost or duplicated. Knobs, read when the
app is built (``load_app`` calls ``app()``):

    FAULTS_LEDGER         the SQLite file (required)
    FAULTS_PREFETCH       unacked deliveries at once (default 10)
    FAULTS_DELAY_S        handler time; also journals a "started" row (default 0)
    FAULTS_POISON_PREFIX  a key starting with this SIGKILLs the process, every time
    FAULTS_FAIL_FLAG      while this file exists, handlers raise TransientError
    FAULTS_FAIL_PREFIX    a key starting with this always raises TransientError
    FAULTS_PERMANENT_PREFIX  a key starting with this raises PermanentError
    FAULTS_HOLD_FLAG      handlers wait until this file exists before anything else
    FAULTS_FAIL_ONCE_PREFIX  a key starting with this fails its first handling only
    FAULTS_KILL_AFTER_COPY   a file: while it holds a number above 0, the process
                          SIGKILLs itself after a failure copy was confirmed and
                          before the original's ack (decrementing the number)
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import ClassVar

from pipeline import App, Consumer, Event, PermanentError, TransientError
from tests.faults.ledger import Ledger

CONSUMER = "ledger"


class ItemRecorded(Event):
    """What the fault tests publish: ``key`` is the identity the ledger counts."""

    event_type: ClassVar[str] = "faults.item.recorded"

    key: str
    blob: str = ""


def build(
    ledger_path: Path | str,
    prefetch: int = 10,
    delay_s: float = 0.0,
    poison_prefix: str | None = None,
    fail_flag: Path | None = None,
    fail_prefix: str | None = None,
    permanent_prefix: str | None = None,
    hold_flag: Path | None = None,
    fail_once_prefix: str | None = None,
) -> App:
    """The ledger app with explicit knobs (in-process tests call this directly)."""
    ledger = Ledger(ledger_path)
    consumer = Consumer(CONSUMER, ["faults.#"], prefetch=prefetch)

    @consumer.handler
    async def record(event: ItemRecorded) -> None:
        while hold_flag is not None and not hold_flag.exists():  # noqa: ASYNC110  (a file)
            await asyncio.sleep(0.05)
        if poison_prefix and event.key.startswith(poison_prefix):
            # Like a segfault in a C extension: no exception, no cleanup, no ack.
            os.kill(os.getpid(), signal.SIGKILL)
        if fail_flag is not None and fail_flag.exists():
            raise TransientError(f"{event.key}: downstream unavailable (flag {fail_flag.name})")
        if fail_once_prefix and event.key.startswith(fail_once_prefix) and not (
                ledger.counts("failed")[event.key]):
            ledger.record(event.key, "failed")
            raise TransientError(f"{event.key}: fails the first time only")
        if fail_prefix and event.key.startswith(fail_prefix):
            raise TransientError(f"{event.key}: fails every time")
        if permanent_prefix and event.key.startswith(permanent_prefix):
            raise PermanentError(f"{event.key}: can never succeed")
        if delay_s:
            ledger.record(event.key, "started")
            await asyncio.sleep(delay_s)
        ledger.record(event.key)

    return App([consumer], events=[ItemRecorded])


def _kill_after_copies(countdown: Path) -> None:
    """SIGKILL between a confirmed failure copy and the original's ack, ``countdown`` times.

    ``forward`` acks through ``pipeline.publish.outbound.acknowledge`` once the
    copy is confirmed; wrapping it puts the crash exactly in that gap.
    """
    from pipeline.publish import outbound

    plain_ack = outbound.acknowledge

    async def acknowledge(message, queue):  # type: ignore[no-untyped-def]
        left = int(countdown.read_text() or "0") if countdown.exists() else 0
        if left > 0:
            countdown.write_text(str(left - 1))
            os.kill(os.getpid(), signal.SIGKILL)
        return await plain_ack(message, queue)

    outbound.acknowledge = acknowledge  # type: ignore[assignment]


def app() -> App:
    flag = os.environ.get("FAULTS_FAIL_FLAG")
    if os.environ.get("FAULTS_KILL_AFTER_COPY"):
        _kill_after_copies(Path(os.environ["FAULTS_KILL_AFTER_COPY"]))
    hold = os.environ.get("FAULTS_HOLD_FLAG")
    return build(
        os.environ["FAULTS_LEDGER"],
        prefetch=int(os.environ.get("FAULTS_PREFETCH", "10")),
        delay_s=float(os.environ.get("FAULTS_DELAY_S", "0")),
        poison_prefix=os.environ.get("FAULTS_POISON_PREFIX") or None,
        fail_flag=Path(flag) if flag else None,
        fail_prefix=os.environ.get("FAULTS_FAIL_PREFIX") or None,
        permanent_prefix=os.environ.get("FAULTS_PERMANENT_PREFIX") or None,
        hold_flag=Path(hold) if hold else None,
        fail_once_prefix=os.environ.get("FAULTS_FAIL_ONCE_PREFIX") or None,
    )
