"""The control plane: typed commands on a durable, replicated log every worker reads.

    commands.py   ControlCommand (the base), CancelEvent, SyncMarker; register_command
    protocols.py  ControlHandler: what a worker plugs in to act on commands
    log.py        ControlLog (the reader every worker runs) and send_command
    cancel.py     CancelGuard: acks a cancelled event without running its handler
    pause.py      PauseSwitch: pauses and resumes a worker (`pipeline consumers pause`)

The log is the stream queue ``pipeline.control.log``: each worker reads it
from its first entry when it starts (so a replica started later knows every
command still kept) and follows it live. docs/ledger.md, "Control plane",
says how to add a command; docs/flow-control.md describes pause and resume.
"""

from pipeline.control.commands import (
    CancelEvent,
    ControlCommand,
    PauseConsumer,
    ResumeConsumer,
    SyncMarker,
    register_command,
)
from pipeline.control.protocols import ControlHandler

__all__ = ["CancelEvent", "ControlCommand", "ControlHandler", "PauseConsumer", "ResumeConsumer",
           "SyncMarker", "register_command"]
