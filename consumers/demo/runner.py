"""The live demo, start to finish.

Apply the topology, start every worker of the app as its own process, run a
producer of the orders domain with documented faults, show a live table
from the management API, and on Ctrl-C or after ``duration``: stop the
producer, SIGTERM the workers (they drain and exit 0), print the last table
and a summary. With ``memory://`` the broker lives in this process, so the
workers run here as tasks (``inprocess.py``) and the table reads the
in-memory queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live

from consumers.demo import report
from consumers.demo.board import (
    BoardLayout,
    BoardState,
    QueueStats,
    WorkerRow,
    handled,
    render,
)
from consumers.demo.inprocess import TaskSupervisor, plans_in_process
from consumers.demo.ledger_view import DemoLedger
from consumers.demo.options import DemoOptions, demo_settings
from consumers.demo.probe import QueueProbe
from consumers.demo.producer import DemoProducer, OrderModels
from consumers.demo.protocols import SupervisedWorker, WorkerSupervisor
from consumers.demo.supervisor import Supervisor
from pipeline.app import App, load_app
from pipeline.connection import connect
from pipeline.consume.plan import plan_worker
from pipeline.consume.process import StopSignal
from pipeline.declare import declare_topology
from pipeline.errors import BrokerUnreachableError
from pipeline.exits import ExitCode
from pipeline.logs import FORMAT, TraceContextFilter
from pipeline.ops.management import open_management
from pipeline.ops.protocols import ManagementApi
from pipeline.publish.publisher import Publisher
from pipeline.settings import PipelineSettings
from pipeline.tracing.sdk import configure_tracing
from pipeline.tracing.tree import format_trace_tree, pick_trace, read_spans
from topology import naming

log = logging.getLogger(__name__)

REFRESH_S = 1.0
ATTACH_TIMEOUT_S = 60.0
DEMO_NOTIFIER_WINDOW_S = 5.0


# -- the trace tree -------------------------------------------------------------


def spans_file(run_dir: Path) -> Path:
    return run_dir / "spans.jsonl"


def extra_worker_env(run_dir: Path) -> dict[str, str]:
    """Environment added to every worker: they append their spans to one file."""
    return {"PIPELINE_TRACE_FILE": str(spans_file(run_dir))}


def after_run(run_dir: Path, console: Console, ledger: DemoLedger | None = None) -> None:
    """Print one retried event's trace as a tree and its ledger timeline."""
    if ledger is not None:
        ledger.show_retried(console)
    path = spans_file(run_dir)
    if not path.exists():
        return
    spans = read_spans(path)
    trace_id = pick_trace(spans)
    if trace_id is None:
        console.print("No event was retried in this run, so there is no retry trace to show.")
        return
    console.print(f"\nOne retried event's trace ({trace_id}; all spans in {path}):")
    console.print(format_trace_tree(spans, trace_id), markup=False, highlight=False, soft_wrap=True)


# -----------------------------------------------------------------------------


def worker_env(settings: PipelineSettings, run_dir: Path) -> dict[str, str]:
    """The workers' environment: the demo's own, plus the settings that must match
    the demo's (broker, vhost, app, ladder) even when they did not come from it."""
    env = dict(os.environ)  # inherited as a container's env is, not read as config
    env.update({
        "PIPELINE_AMQP_URL": settings.amqp_url.get_secret_value(),
        "PIPELINE_MANAGEMENT_URL": settings.management_url.get_secret_value(),
        "PIPELINE_APP": settings.app or "",
        "PIPELINE_RETRY_DELAYS": settings.retry_delays,
        "PIPELINE_DELIVERY_LIMIT": str(settings.delivery_limit),
        # Several workers on one machine: a fixed health port would collide.
        "PIPELINE_HEALTH_PORT": "0",
        # The notifier holds grouped dead letters unacked for a whole window;
        # a short one keeps the demo live and its stop quick.
        "PIPELINE_NOTIFIER_GROUP_WINDOW_S": str(DEMO_NOTIFIER_WINDOW_S),
        "PIPELINE_LEDGER_URL": settings.ledger_url,
    })
    env.update(extra_worker_env(run_dir))
    return env


async def run_demo(settings: PipelineSettings, options: DemoOptions, console: Console) -> int:
    """Run the demo; return an exit code (0 when every worker stopped cleanly).

    Raises ``ConfigurationError`` for an app without the orders events,
    ``BrokerUnreachableError`` when the broker or its management API does
    not answer, and ``TopologyMismatchError`` when the broker's objects differ.
    """
    app = load_app(settings.app)
    models = OrderModels.from_app(app)
    run_dir = _run_dir(options.run_dir)
    settings = demo_settings(settings, options, run_dir)
    ledger = DemoLedger(settings.ledger_url) if settings.ledger else None
    # The demo's own publish spans go to the same file as its workers' spans.
    telemetry = configure_tracing(settings, component="demo", trace_file=spans_file(run_dir))
    # Connect before logging goes to the file: retry warnings belong on screen.
    connection = await connect(settings, f"{settings.service_name}.demo")
    try:
        with _logging_to(run_dir / "demo.log"):
            await declare_topology(
                connection, app.topology(settings.ladder, settings.delivery_limit, settings.ledger,
                             settings.queue_replicas)
            )
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            producer = DemoProducer(
                Publisher(channel, settings), models, options.rate, uuid.uuid4().hex[:4],
                settings.service_name,
                # memory:// has no delay levels (docs/scheduling.md): no delayed orders there.
                delays=not settings.is_memory,
            )
            async with open_management(settings) as api:
                await api.overview()  # a clear error now if the management API is off
                links = Links(api, QueueProbe(connection), producer, ledger)
                code = await DemoRun(settings, app, options, console, run_dir, links).run()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
        if telemetry is not None:
            telemetry.shutdown()
    after_run(run_dir, console, ledger)
    if ledger is not None:
        ledger.close()
    return code


@dataclass(frozen=True)
class Links:
    """What a run talks to: the management API, the queue probe, the producer."""

    api: ManagementApi
    probe: QueueProbe
    producer: DemoProducer
    ledger: DemoLedger | None = None


class DemoRun:
    """One run of the demo: workers, producer, board, and the way out."""

    def __init__(
        self,
        settings: PipelineSettings,
        app: App,
        options: DemoOptions,
        console: Console,
        run_dir: Path,
        links: Links,
    ) -> None:
        self.settings, self.options, self.console = settings, options, console
        self.run_dir = run_dir
        self.api, self.probe, self.producer = links.api, links.probe, links.producer
        self.ledger = links.ledger
        rows = [
            WorkerRow(name, plan_worker(app, name, settings).queue, name in app.consumers)
            for name in [*sorted(app.consumers), *sorted(app.workers)]
        ]
        self.layout = BoardLayout(settings.vhost, options.rate, settings.ladder, rows)
        self.supervisor: WorkerSupervisor
        if settings.is_memory:  # the broker is in this process: so are the workers
            topology = app.topology(settings.ladder, settings.delivery_limit,
                                    replicas=settings.queue_replicas)
            plans = plans_in_process(app, settings, DEMO_NOTIFIER_WINDOW_S)
            self.supervisor = TaskSupervisor(settings, topology, plans, run_dir / "demo.log")
        else:
            # The ledger stops last: it records the others' final outcomes.
            self.supervisor = Supervisor([r.name for r in rows], run_dir,
                                         worker_env(settings, run_dir), last=[naming.LEDGER])
        self.stop = StopSignal()
        self.store_before = 0
        self.handled_before: dict[str, int] = {}
        self.producing: tuple[float, float | None] | None = None  # (since, until)

    async def run(self) -> int:
        """Start, watch until stopped, shut down, report; return the exit code."""
        await self._take_baseline()
        report.intro(self.console, self.settings, self.options, self.api.ui_url, self.run_dir)
        self.stop.install()
        ended_by_signal = True
        self.supervisor.start()
        try:
            failed = await self._wait_attached()
            if failed is not None:
                report.worker_failed(self.console, failed)
                code = failed.returncode or 0
                return code if code > 0 else ExitCode.ERROR  # < 0: killed by a signal
            if not self.stop.stop.is_set():  # Ctrl-C while the workers started
                ended_by_signal = await self._watch()
        finally:
            codes = await self._shut_down(ended_by_signal)
        self.console.print(render(self.layout, await self._final_state()))
        report.summary(
            self.console, self.supervisor.workers, codes, self.producer.counts,
            self._elapsed_s(), self.api.ui_url, self.run_dir, self.settings.is_memory,
        )
        return ExitCode.ERROR if any(codes.values()) else 0

    async def _wait_attached(self) -> SupervisedWorker | None:
        """Wait until each worker consumes its queue; return a worker that exited instead."""
        wanted = [row.queue for row in self.layout.workers]
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        with self.console.status(f"starting {len(wanted)} workers..."):
            while not self.stop.stop.is_set():
                exited = self.supervisor.exited()
                if exited:
                    return exited[0]
                depths = await self.probe.read(wanted)
                if all(q in depths and depths[q].consumers >= 1 for q in wanted):
                    return None
                if time.monotonic() > deadline:
                    log.warning("workers not attached after %.0fs; producing anyway",
                                ATTACH_TIMEOUT_S)
                    return None
                await _wait(self.stop.stop, 0.2)
        return None

    async def _watch(self) -> bool:
        """Produce and refresh the board until Ctrl-C or the duration; True if Ctrl-C."""
        stop_producing = asyncio.Event()
        producing = asyncio.create_task(self.producer.run(stop_producing))
        self.producing = (time.monotonic(), None)
        duration = self.options.duration_s
        try:
            with Live(console=self.console, auto_refresh=False, transient=True) as live:
                while True:
                    live.update(render(self.layout, await self._state()), refresh=True)
                    left = duration - self._elapsed_s() if duration > 0 else REFRESH_S
                    if self.stop.stop.is_set() or producing.done() or left <= 0:
                        break
                    await _wait(self.stop.stop, min(REFRESH_S, left))
        finally:
            stop_producing.set()
            await producing  # re-raises if the producer failed
            self.producing = (self.producing[0], time.monotonic())
        return self.stop.stop.is_set()

    async def _shut_down(self, ended_by_signal: bool) -> dict[str, int]:
        # After Ctrl-C, a second Ctrl-C hurries the workers; after --duration,
        # the first one does.
        hurried = self.stop.force.is_set if ended_by_signal else self.stop.stop.is_set
        timeout_s = self.settings.shutdown_timeout_s + 15
        with self.console.status("stopping the workers (each drains its in-flight events)..."):
            return await self.supervisor.stop(timeout_s, hurried)

    async def _final_state(self) -> BoardState:
        # The management API lags by its statistics interval (5 s); the
        # workers' own counters are exact and already in their logs.
        counted: dict[str, int] = {}
        workers = {worker.name: worker for worker in self.supervisor.workers}
        for row in self.layout.workers:
            counters = workers[row.name].counters()
            if counters is not None:
                counted[row.queue] = sum(n for name, n in counters.items() if name != "requeued")
        return dataclasses.replace(await self._state(), counted=counted)

    async def _state(self) -> BoardState:
        return BoardState(
            depths=await self.probe.read(self.layout.queues()),
            stats=await _queues(self.api),
            processes=self.supervisor.states(),
            counts=self.producer.counts,
            elapsed_s=self._elapsed_s(),
            store_before=self.store_before,
            handled_before=self.handled_before,
            events=await self.ledger.latest() if self.ledger is not None else (),
        )

    async def _take_baseline(self) -> None:
        # The store and the broker's ack counters keep earlier runs' numbers;
        # the board shows what this run added.
        store = (await self.probe.read([naming.DEAD_LETTER_STORE])).get(naming.DEAD_LETTER_STORE)
        self.store_before = store.ready if store else 0
        stats = await _queues(self.api)
        for row in self.layout.workers:
            self.handled_before[row.queue] = handled(stats, row.queue) or 0

    def _elapsed_s(self) -> float:
        if self.producing is None:
            return 0.0
        since, until = self.producing
        return (until or time.monotonic()) - since


async def _queues(api: ManagementApi) -> QueueStats | None:
    """Queue records by name, or None while the management API does not answer."""
    try:
        return {q["name"]: q for q in await api.queues()}
    except (BrokerUnreachableError, httpx.HTTPError) as exc:
        # The table goes on with live depths; only "handled" waits for the API.
        log.warning("management API: %s", exc)
        return None


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):  # not wait_for: pipeline/consume/worker.py
            await event.wait()


def _run_dir(wanted: Path | None) -> Path:
    if wanted is None:
        return Path(tempfile.mkdtemp(prefix="pipeline-demo-"))
    wanted.mkdir(parents=True, exist_ok=True)
    return wanted


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Send this process's log to ``path`` while the live table owns the terminal."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(TraceContextFilter())
    root.handlers[:] = [handler]
    # httpx logs every request at INFO: one line a second of noise here.
    requests = logging.getLogger("httpx")
    level = requests.level
    requests.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = saved
        requests.setLevel(level)
        handler.close()


__all__ = ["DemoRun", "run_demo", "worker_env"]
