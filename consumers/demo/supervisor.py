"""Start the demo's workers as separate processes, and stop them the way an
orchestrator does: SIGTERM, wait for the drain, SIGKILL only past a deadline.

Each worker runs ``python -m consumers NAME``, exactly the command of its
docker-compose service, with its output in ``<run dir>/NAME.log``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# The deployable entry point (the compose services use the same command);
# started by name so that pipeline/ never imports consumers/.
WORKER_MODULE = "consumers"

# The one line a worker logs when it stops (pipeline/consume/process.py).
_STOPPED_LINE = re.compile(r"consumer (?P<name>\S+) stopped after \S+: (?P<counters>.*)$")


@dataclass
class WorkerProcess:
    """One worker process and where its output goes."""

    name: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def state(self) -> str:
        if self.process is None:
            return "-"
        code = self.process.poll()
        return "up" if code is None else f"exit {code}"

    def counters(self) -> dict[str, int] | None:
        """The counters from the worker's last "stopped" log line, if it wrote one."""
        for line in reversed(self.log_lines()):
            match = _STOPPED_LINE.search(line)
            if match:
                pairs = (item.split("=", 1) for item in match["counters"].split(", "))
                return {key: int(value) for key, value in pairs if value.isdigit()}
        return None

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []


class Supervisor:
    """Runs one process per worker name; ``stop`` waits for each to drain and exit."""

    def __init__(self, names: Sequence[str], run_dir: Path, env: Mapping[str, str],
                 last: Sequence[str] = ()) -> None:
        self.workers = [WorkerProcess(name, run_dir / f"{name}.log") for name in names]
        self._env = dict(env)
        # Stopped only once the others exited: the ledger records their last outcomes.
        self._last = frozenset(last)

    def start(self) -> None:
        """Start every worker; raise ``OSError`` if the interpreter cannot be started."""
        for worker in self.workers:
            with worker.log_path.open("ab") as output:
                worker.process = subprocess.Popen(
                    [sys.executable, "-m", WORKER_MODULE, worker.name],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    # Its own process group: a Ctrl-C in the terminal reaches only
                    # the demo, which then stops each worker once, with SIGTERM.
                    process_group=0,
                )
            log.info("started %s (pid %d), log %s", worker.name, worker.pid, worker.log_path)

    def exited(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process is not None and not w.is_running]

    def states(self) -> dict[str, str]:
        return {w.name: w.state for w in self.workers}

    async def stop(self, timeout_s: float, is_hurried: Callable[[], bool]) -> dict[str, int]:
        """SIGTERM every worker and wait up to ``timeout_s`` for them to exit.

        When ``is_hurried()`` turns true (a second Ctrl-C) each worker gets a
        second SIGTERM, which makes it stop at once with its unfinished
        deliveries returned to their queue. Past the deadline, SIGKILL.
        Returns each worker's exit code.
        """
        deadline = time.monotonic() + timeout_s
        first = [w for w in self.workers if w.name not in self._last]
        self._signal(signal.SIGTERM, among=first)
        while True:  # the others first: the ledger then records their last outcomes
            if not any(w.is_running for w in first) or time.monotonic() > deadline \
                    or is_hurried():
                break
            await asyncio.sleep(0.1)
        self._signal(signal.SIGTERM, among=[w for w in self.workers if w.name in self._last])
        hurried = False
        while any(w.is_running for w in self.workers):
            if not hurried and is_hurried():
                hurried = True
                # Only to those still draining: one that already logged its
                # last line is exiting, and a signal now would kill it.
                self._signal(signal.SIGTERM, only_draining=True)
            if time.monotonic() > deadline:
                log.error("workers still running %.0fs after SIGTERM: killing them", timeout_s)
                self._signal(signal.SIGKILL)
                break
            await asyncio.sleep(0.1)
        return {w.name: self._reap(w) for w in self.workers if w.process is not None}

    def _signal(self, sig: signal.Signals, only_draining: bool = False,
                among: Sequence[WorkerProcess] | None = None) -> None:
        for worker in self.workers if among is None else among:
            if worker.process is None or not worker.is_running:
                continue
            if only_draining and worker.counters() is not None:
                continue
            worker.process.send_signal(sig)

    @staticmethod
    def _reap(worker: WorkerProcess) -> int:
        assert worker.process is not None
        try:
            return worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not exit even after SIGKILL", worker.name, worker.pid)
            return -1
