"""Exit codes of every process we ship (the ``pipeline`` CLI and ``python -m consumers``).

One table, one mapping from error to code: a consumer that refuses to start
and ``pipeline topology check`` say the same thing about the same problem.
"""

from __future__ import annotations

import enum

from pipeline.errors import (
    AlreadyHandledError,
    BrokerUnreachableError,
    ConfigurationError,
    EventNotFoundError,
    InvalidMessageError,
    LedgerUnavailableError,
    PublishError,
    TopologyError,
)


class ExitCode(enum.IntEnum):
    """What a process's exit status means (also in the README)."""

    OK = 0
    ERROR = 1  # unexpected: a bug; the traceback is logged
    CONFIG = 2  # usage or configuration error; the message says what to fix
    UNREACHABLE = 3  # the broker (or its management API, or the ledger DB) could not be reached
    TOPOLOGY = 4  # the broker's objects or policies differ from the declared topology
    UNCONFIRMED = 5  # a publish was not confirmed (unroutable, rejected, timed out)
    PROBLEM = 6  # a check found something wrong (status, a missing dead letter or event,
    # a cancel that came too late)
    INTERRUPTED = 130  # Ctrl-C


def exit_code_for(error: BaseException) -> ExitCode:
    """The documented exit code for an error that ends a process."""
    if isinstance(error, ConfigurationError | InvalidMessageError):
        return ExitCode.CONFIG
    if isinstance(error, BrokerUnreachableError | LedgerUnavailableError):
        return ExitCode.UNREACHABLE
    if isinstance(error, TopologyError):
        return ExitCode.TOPOLOGY
    if isinstance(error, PublishError):
        return ExitCode.UNCONFIRMED
    if isinstance(error, EventNotFoundError | AlreadyHandledError):
        return ExitCode.PROBLEM
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.ERROR
