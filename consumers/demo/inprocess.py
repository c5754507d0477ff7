"""The demo's workers as tasks of this process, for ``memory://``.

A memory:// broker lives in the process that uses it, so the demo cannot
start workers as processes of their own: each runs here, exactly as
``python -m consumers NAME`` would (``run_worker``: connect, declare, drift
check, consume, drain on stop), with its own connection and a stop signal
the demo sets. Their counters come from each worker's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from consumers import admin_notifier
from consumers.admin_notifier import NotifierSettings
from pipeline.app import App
from pipeline.consume.plan import WorkerPlan, plan_worker
from pipeline.consume.process import StopSignal, run_worker
from pipeline.exits import ExitCode
from pipeline.settings import PipelineSettings
from topology import Topology

log = logging.getLogger(__name__)

COUNTERS = ("acked", "retried", "dead-lettered", "parked", "requeued")


class TaskWorker:
    """One worker running as a task; the demo reads it as it reads a worker process."""

    def __init__(self, plan: WorkerPlan, log_path: Path) -> None:
        self.name = plan.consumer
        self.plan = plan
        self.log_path = log_path
        self.stop = StopSignal()
        self.task: asyncio.Task[ExitCode] | None = None

    @property
    def returncode(self) -> int | None:
        task = self.task
        if task is None or not task.done():
            return None
        if task.cancelled() or task.exception() is not None:
            return int(ExitCode.ERROR)
        return int(task.result())

    @property
    def state(self) -> str:
        if self.task is None:
            return "-"
        code = self.returncode
        return "up" if code is None else f"exit {code}"

    def counters(self) -> dict[str, int]:
        """Deliveries settled so far, by outcome (what a worker logs when it stops)."""
        counts = dict.fromkeys(COUNTERS, 0)
        for (_, _, outcome), value in self.plan.metrics.deliveries.values.items():
            counts[outcome] = counts.get(outcome, 0) + int(value)
        return counts

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


class TaskSupervisor:
    """Runs every worker as a task; ``stop`` drains them as SIGTERM would."""

    def __init__(self, settings: PipelineSettings, topology: Topology,
                 plans: Sequence[WorkerPlan], log_path: Path) -> None:
        self._settings = settings
        self._topology = topology
        self._workers = [TaskWorker(plan, log_path) for plan in plans]

    @property
    def workers(self) -> Sequence[TaskWorker]:
        return self._workers

    def start(self) -> None:
        for worker in self._workers:
            worker.task = asyncio.create_task(
                run_worker(self._settings, worker.plan, self._topology, worker.stop),
                name=f"demo-worker-{worker.name}",
            )
            log.info("started %s in this process (memory://)", worker.name)

    def exited(self) -> list[TaskWorker]:
        return [w for w in self._workers if w.returncode is not None]

    def states(self) -> dict[str, str]:
        return {w.name: w.state for w in self._workers}

    async def stop(self, timeout_s: float, is_hurried: Callable[[], bool]) -> dict[str, int]:
        """Drain every worker; a hurried stop returns unfinished deliveries at once."""
        for worker in self._workers:
            worker.stop.stop.set()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(w.returncode is None for w in self._workers):
            if is_hurried():
                for worker in self._workers:
                    worker.stop.force.set()
            if asyncio.get_running_loop().time() > deadline:
                log.error("workers still running %.0fs after the stop: cancelling them",
                          timeout_s)
                for worker in self._workers:
                    if worker.task is not None:
                        worker.task.cancel()
                        with contextlib.suppress(BaseException):
                            await worker.task
                break
            await asyncio.sleep(0.1)
        return {w.name: w.returncode if w.returncode is not None else -1
                for w in self._workers}


def plans_in_process(app: App, settings: PipelineSettings, notifier_window_s: float
                     ) -> list[WorkerPlan]:
    """Every worker's plan; the notifier groups over the demo's short window."""
    plans = []
    for name in [*sorted(app.consumers), *sorted(app.workers)]:
        if name == admin_notifier.NAME:
            options = NotifierSettings(group_window_s=notifier_window_s)
            plans.append(admin_notifier.plan(settings, options=options))
        else:
            plans.append(plan_worker(app, name, settings))
    return plans
