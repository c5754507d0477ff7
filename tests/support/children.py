"""Processes a test starts (``python -m consumers ...``) with a log file, never outliving it."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import PipelineSettings
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_env(settings: PipelineSettings, **extra: str) -> dict[str, str]:
    """The environment that rebuilds ``settings`` in a child, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None or isinstance(value, dict):
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"PIPELINE_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(
            value)
    env.update(PYTHONPATH=str(ROOT), OTEL_SDK_DISABLED="true")
    env.update(extra)
    return env


async def run_pipeline(settings: PipelineSettings, app: str,
                       *args: str) -> subprocess.CompletedProcess[str]:
    """``pipeline ARGS`` in a child with ``settings`` and ``PIPELINE_APP=app``, to its end."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "pipeline", *args],
        env=child_env(settings, PIPELINE_APP=app), capture_output=True, text=True, timeout=60,
    )


@dataclass
class Child:
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    async def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, then its exit code."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.popen.wait, timeout_s)

    async def logged(self, text: str, timeout_s: float = 30) -> None:
        """Wait until ``text`` is in its log (fails with the log if it exits first)."""

        async def found() -> None:
            if text in self.log():
                return
            if not self.alive:
                raise RuntimeError(f"exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            raise AssertionError(f"{text!r} not logged yet")

        await eventually(found, timeout=timeout_s, interval=0.05)


@dataclass
class Children:
    directory: Path
    started: list[Child] = field(default_factory=list)

    def start(self, env: Mapping[str, str], *args: str) -> Child:
        log_path = self.directory / f"child-{len(self.started) + 1}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", "consumers", *args], cwd=ROOT, env=dict(env),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        child = Child(popen, log_path)
        self.started.append(child)
        return child


@contextmanager
def children(directory: Path) -> Iterator[Children]:
    """Start children in the block; every one still running is killed at its end."""
    started = Children(directory)
    try:
        yield started
    finally:
        for child in started.started:
            child.kill9()
