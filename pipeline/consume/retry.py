"""A consumer's own retry rules: its ladder, what is never retried, how many attempts.

    billing = Consumer("billing", ["orders.#"], retry=RetryPolicy(
        delays="1s,10s,1m", throws=(ValidationError, CardDeclined), max_attempts=3))

Only data: the failure policy (``failure.py``) decides with it, and the
topology declares the rungs it needs (``Consumer.subscription``). Without a
``RetryPolicy`` a consumer uses ``PIPELINE_RETRY_DELAYS`` and retries every
exception but ``PermanentError`` once per rung.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pipeline.errors import ConfigurationError
from topology import RetryLadder


@dataclass(frozen=True)
class RetryPolicy:
    """``delays``: this consumer's ladder (default ``PIPELINE_RETRY_DELAYS``);
    ``throws``: exception types dead-lettered at once as ``permanent-error``;
    ``max_attempts``: how many times the handler runs at most (first try
    included). Fewer attempts than rungs leave the later rungs out; more
    repeat the last rung.
    """

    delays: str | Sequence[timedelta] | None = None
    throws: tuple[type[BaseException], ...] = ()
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.throws, type):
            object.__setattr__(self, "throws", (self.throws,))
        for kind in self.throws:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(f"throws must list exception classes, not {kind!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1 (the first try)")
        self.own_ladder  # noqa: B018  (parse now: a bad ladder fails where it is declared)

    @property
    def own_ladder(self) -> RetryLadder | None:
        """The ladder given here, or None to use the deployment's."""
        if self.delays is None:
            return None
        try:
            if isinstance(self.delays, str):
                return RetryLadder.parse(self.delays)
            return RetryLadder.of(list(self.delays))
        except ValueError as exc:
            raise ConfigurationError(f"retry delays {self.delays!r}: {exc}") from None

    @property
    def max_retries(self) -> int | None:
        return None if self.max_attempts is None else self.max_attempts - 1

    def ladder_for(self, default: RetryLadder) -> RetryLadder:
        """The rungs this consumer uses, given the deployment's ladder."""
        return (self.own_ladder or default).limited(self.max_retries)

    def retries_for(self, default: RetryLadder) -> int:
        """How many retries a delivery gets before it is dead-lettered."""
        ladder = self.ladder_for(default)
        return len(ladder) if self.max_retries is None or not ladder else self.max_retries


DEFAULT_POLICY = RetryPolicy()
