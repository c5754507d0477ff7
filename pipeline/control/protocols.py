"""What plugs into the control plane."""

from __future__ import annotations

from typing import Protocol

from pipeline.control.commands import ControlCommand


class ControlHandler(Protocol):
    """Acts on the commands it knows; ignores the others.

    ``apply`` runs on the worker's event loop for every entry of the log, the
    old ones at start too, and again after a reconnect (the log is re-read
    from its start): it must be idempotent and quick (no I/O).
    """

    def apply(self, command: ControlCommand) -> None: ...
