"""Helpers for fault tests: consumer subprocesses, pipelined publishing, the report.

A consumer under test runs as ``python -m consumers ledger`` with
``PIPELINE_APP=tests.apps.faults_ledger:app``, exactly as a deployment runs
it, so ``kill -9`` and SIGTERM hit a real process. Each one is started with
``PR_SET_PDEATHSIG`` so it dies with the test run even if pytest is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from pipeline import PipelineSettings, Publisher
from pipeline.connection import connect
from pipeline.errors import PublishError
from pipeline.ops.management import ManagementClient
from tests.apps.faults_ledger import CONSUMER, ItemRecorded, build
from tests.support.waiting import eventually
from topology import apply_topology, naming

ROOT = Path(__file__).resolve().parents[2]
QUEUE = naming.consumer_queue(CONSUMER)
APP_PATH = "tests.apps.faults_ledger:app"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def settings_env(settings: PipelineSettings) -> dict[str, str]:
    """The PIPELINE_* variables that rebuild ``settings`` in a child process."""
    return {
        "PIPELINE_AMQP_URL": settings.amqp_url.get_secret_value(),
        "PIPELINE_MANAGEMENT_URL": settings.management_url.get_secret_value(),
        "PIPELINE_SERVICE_NAME": settings.service_name,
        "PIPELINE_RETRY_DELAYS": settings.retry_delays,
        "PIPELINE_DELIVERY_LIMIT": str(settings.delivery_limit),
        "PIPELINE_CONFIRM_TIMEOUT_S": str(settings.confirm_timeout_s),
        "PIPELINE_CONNECT_TIMEOUT_S": str(settings.connect_timeout_s),
        "PIPELINE_SHUTDOWN_TIMEOUT_S": str(settings.shutdown_timeout_s),
        "PIPELINE_RECONNECT_INTERVAL_S": str(settings.reconnect_interval_s),
    }


@dataclass
class ConsumerProcess:
    """One ``python -m consumers ledger`` child and its log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    queue: str = QUEUE

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    async def exit_code(self, timeout_s: float = 60) -> int:
        return await asyncio.to_thread(self.popen.wait, timeout_s)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.pid}")

    async def consuming(self, timeout_s: float = 30) -> ConsumerProcess:
        """Wait until it logged that it consumes its queue (or fail with its log)."""

        async def started() -> None:
            if not self.alive:
                raise RuntimeError(
                    f"consumer exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            assert f"consuming {self.queue}" in self.log(), "not consuming yet"

        await eventually(started, timeout=timeout_s, interval=0.1)
        return self


@dataclass
class ConsumerFactory:
    """Starts consumer processes and guarantees none outlives the test."""

    directory: Path
    processes: list[ConsumerProcess] = field(default_factory=list)

    def start(self, settings: PipelineSettings, ledger: Path | None, **knobs: object,
              ) -> ConsumerProcess:
        """``python -m consumers ledger`` (or ``worker=``/``app=``) with ``FAULTS_*`` knobs."""
        worker = str(knobs.pop("worker", CONSUMER))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
        env.update(settings_env(settings))
        env.update({
            "PIPELINE_APP": str(knobs.pop("app", APP_PATH)),
            "PYTHONPATH": str(ROOT),
            "OTEL_SDK_DISABLED": "true",
            "OTEL_TRACES_EXPORTER": "none",
        })
        if ledger is not None:
            env["FAULTS_LEDGER"] = str(ledger)
        env.update({f"FAULTS_{name.upper()}": str(value) for name, value in knobs.items()})
        log_path = self.directory / f"consumer-{len(self.processes) + 1}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", "consumers", worker], cwd=ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        process = ConsumerProcess(popen, log_path, naming.consumer_queue(worker))
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.kill9()


async def declare(settings: PipelineSettings, ledger: Path) -> None:
    """Declare the ledger app's topology (so publishes route before a consumer runs)."""
    app = build(ledger)
    connection = await connect(settings, "faults.setup")
    try:
        await apply_topology(connection, app.topology(settings.ladder, settings.delivery_limit))
    finally:
        await connection.close()


@dataclass
class PublishResult:
    """Which keys the broker confirmed and which raised (and with what)."""

    confirmed: list[str] = field(default_factory=list)
    raised: dict[str, BaseException] = field(default_factory=dict)

    def add(self, other: PublishResult) -> None:
        self.confirmed += other.confirmed
        self.raised.update(other.raised)


async def publish_keys(publisher: Publisher, keys: Sequence[str], blob: str = "") -> PublishResult:
    """Publish one event per key with pipelined confirms; sort keys by outcome."""
    outcomes = await asyncio.gather(
        *(publisher.publish(ItemRecorded(key=key, blob=blob)) for key in keys),
        return_exceptions=True,
    )
    result = PublishResult()
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            result.raised[key] = outcome
        else:
            result.confirmed.append(key)
    return result


async def publish_all(publisher: Publisher, keys: Iterable[str], chunk: int = 500,
                      ) -> PublishResult:
    total = PublishResult()
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == chunk:
            total.add(await publish_keys(publisher, batch))
            batch = []
    if batch:
        total.add(await publish_keys(publisher, batch))
    return total


def non_publish_errors(result: PublishResult) -> dict[str, BaseException]:
    """Raised errors that are not our ``PublishError``: each one is a bug."""
    return {k: e for k, e in result.raised.items() if not isinstance(e, PublishError)}


async def queue_depths(settings: PipelineSettings) -> dict[str, tuple[int, int]]:
    """(ready, unacked) per non-empty queue of the vhost, for failure messages."""
    async with ManagementClient(settings) as api:
        return {q["name"]: (q.get("messages_ready", 0), q.get("messages_unacknowledged", 0))
                for q in await api.queues() if q.get("messages", 0)}


async def take_dead_letters(settings: PipelineSettings) -> list[AbstractIncomingMessage]:
    """Remove and return every message now in the dead-letter store."""
    taken: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        store = await channel.get_queue(naming.DEAD_LETTER_STORE, ensure=True)
        while (message := await store.get(fail=False, no_ack=True)) is not None:
            taken.append(message)
    return taken


def key_of(message: AbstractIncomingMessage) -> str:
    """The ledger key of a stored ``ItemRecorded`` (its body is a CloudEvent)."""
    return message.body.split(b'"key":"', 1)[-1].split(b'"', 1)[0].decode()


@dataclass
class Drained:
    """What the end of a scenario found, every queue of the vhost read.

    ``store`` and ``notices`` are the messages taken from the dead-letter
    store and the notifier's queue (no notifier runs in fault tests);
    ``records`` the ledger's feed (no ledger worker runs either);
    ``elsewhere`` is any other queue still holding messages (ready, unacked):
    a consumer queue or rung that is not empty means an event is not settled.
    """

    store: list[AbstractIncomingMessage] = field(default_factory=list)
    notices: list[AbstractIncomingMessage] = field(default_factory=list)
    records: int = 0
    elsewhere: dict[str, tuple[int, int]] = field(default_factory=dict)


async def drain_everything(settings: PipelineSettings) -> Drained:
    """Take what the store and the notifier queue hold; list any other queue not empty.

    Unacked messages count as ``elsewhere`` wherever they are (the store
    included): something still holds them. Streams (the control log) keep
    their entries by design and are skipped.
    """
    drained = Drained()
    async with ManagementClient(settings) as api:
        queues = [q for q in await api.queues() if q.get("type") != "stream"]
    takers = {naming.DEAD_LETTER_STORE: drained.store,
              naming.ADMIN_NOTIFIER_QUEUE: drained.notices}
    # The ledger's queue is single-active-consumer (no basic.get): purged, counted.
    purged = {naming.LEDGER_QUEUE}
    for queue in queues:
        ready, unacked = queue.get("messages_ready", 0), queue.get("messages_unacknowledged", 0)
        if unacked or (ready and queue["name"] not in {*takers, *purged}):
            drained.elsewhere[queue["name"]] = (ready, unacked)
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            if queue["name"] in purged:
                declared = await channel.get_queue(queue["name"], ensure=False)
                purge = await declared.purge()
                drained.records += purge.message_count or 0
        for name, into in takers.items():
            if not any(q["name"] == name for q in queues):
                continue
            source = await channel.get_queue(name, ensure=True)
            while (message := await source.get(fail=False, no_ack=True)) is not None:
                into.append(message)
        # A ready message the management stats have not shown yet: ask the queues.
        for queue in queues:
            if queue["name"] in {*takers, *purged} or queue["name"] in drained.elsewhere:
                continue
            declared = await channel.declare_queue(queue["name"], passive=True)
            if declared.declaration_result.message_count:
                drained.elsewhere[queue["name"]] = (declared.declaration_result.message_count, 0)
    return drained


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@pytest.fixture
async def consumers(tmp_path: Path) -> AsyncIterator[ConsumerFactory]:
    """Start consumer processes; all are SIGKILLed when the test ends, pass or fail."""
    factory = ConsumerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.kill_all()
