"""Run the ``pipeline`` CLI or a consumer as a subprocess with the settings of a test."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import PipelineSettings
from tests.faults.harness import ROOT, settings_env


def child_env(settings: PipelineSettings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
    env.update(settings_env(settings))
    env.update({"PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true",
                "OTEL_TRACES_EXPORTER": "none",
                "PIPELINE_APP": settings.app or "consumers.registry:app"})
    env.update(extra)
    return env


def run_cli(settings: PipelineSettings, *args: str, timeout_s: float = 60,
            **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS``; its exit code, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          env=child_env(settings, **extra), capture_output=True, text=True,
                          timeout=timeout_s, check=False)
