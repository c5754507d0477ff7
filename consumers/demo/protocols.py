"""The interfaces the demo runner drives, in one place.

    SupervisedWorker   one worker of the demo: a process (``supervisor.WorkerProcess``)
                       or, for memory://, a task of this process
                       (``inprocess.TaskWorker``)
    WorkerSupervisor   starts the workers and stops them the way an orchestrator does
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol


class SupervisedWorker(Protocol):
    """One worker: its name, state, counters and log."""

    name: str
    log_path: Path

    @property
    def returncode(self) -> int | None: ...

    @property
    def state(self) -> str: ...

    def counters(self) -> dict[str, int] | None: ...

    def log_lines(self) -> list[str]: ...


class WorkerSupervisor(Protocol):
    """Runs the demo's workers; ``stop`` drains them and returns each exit code."""

    @property
    def workers(self) -> Sequence[SupervisedWorker]: ...

    def start(self) -> None: ...

    def exited(self) -> Sequence[SupervisedWorker]: ...

    def states(self) -> dict[str, str]: ...

    async def stop(self, timeout_s: float, is_hurried: Callable[[], bool]) -> dict[str, int]: ...
