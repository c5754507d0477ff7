"""What ``pipeline demo`` was asked to do, and the settings the demo runs with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings

# --fast-ladder: five short rungs, so a demo of a minute shows events
# climbing the whole ladder. The rung queues get their own names
# (pipeline.<consumer>.retry.02.2s ...), so they never collide with the
# default ladder's queues.
FAST_LADDER = "1s,2s,3s,4s,5s"


@dataclass(frozen=True)
class DemoOptions:
    """What ``pipeline demo`` was asked to do."""

    duration_s: float = 0.0  # 0: until Ctrl-C
    rate: float = 5.0  # events per second
    fast_ladder: bool = False
    run_dir: Path | None = None  # default: a new temporary directory

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ConfigurationError(f"--rate must be above 0 events/s, not {self.rate:g}")
        if self.duration_s < 0:
            raise ConfigurationError(f"--duration must be 0 (until Ctrl-C) or more, not "
                                     f"{self.duration_s:g}")


def demo_settings(
    settings: PipelineSettings, options: DemoOptions, run_dir: Path | None = None
) -> PipelineSettings:
    """The settings the demo and its workers use.

    ``--fast-ladder`` swaps the ladder; the ledger goes to ``run_dir`` unless
    PIPELINE_LEDGER_URL names another one.
    """
    values: dict[str, Any] = {name: getattr(settings, name) for name in type(settings).model_fields}
    if options.fast_ladder:
        values["retry_delays"] = FAST_LADDER
    default_ledger = type(settings).model_fields["ledger_url"].default
    if run_dir is not None and settings.ledger_url == default_ledger:
        values["ledger_url"] = f"sqlite:///{run_dir.resolve() / 'ledger.db'}"
    return PipelineSettings(**values)
