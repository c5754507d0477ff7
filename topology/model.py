"""Broker objects as frozen data: what to declare, independent of how."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

ExchangeType = Literal["topic", "direct", "fanout", "headers"]
QueueRole = Literal[
    "consumer", "express", "retry", "dead-letter-store", "notifier", "parked", "ledger",
    "control", "delay", "scheduler"
]
ArgumentValue = str | int | bool


def _frozen(args: Mapping[str, ArgumentValue]) -> Mapping[str, ArgumentValue]:
    return MappingProxyType(dict(args))


@dataclass(frozen=True)
class ExchangeSpec:
    """A durable exchange."""

    name: str
    type: ExchangeType


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue and its ``x-`` arguments.

    ``role`` and ``consumer`` are ours, not the broker's: they let the CLI and
    the status screen group a consumer's queue with its rungs.
    """

    name: str
    arguments: Mapping[str, ArgumentValue] = field(default_factory=dict)
    role: QueueRole = "consumer"
    consumer: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _frozen(self.arguments))

    @property
    def queue_type(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))


@dataclass(frozen=True)
class BindingSpec:
    """Messages published to ``exchange`` with a key matching ``pattern`` reach ``queue``.

    ``to_exchange``: ``queue`` names an exchange (an exchange-to-exchange
    binding). ``arguments``: a headers exchange's match, as sorted pairs (a
    binding stays hashable).
    """

    exchange: str
    queue: str
    pattern: str
    arguments: tuple[tuple[str, str], ...] = ()
    to_exchange: bool = False


@dataclass(frozen=True)
class Topology:
    """Everything the pipeline declares on a vhost."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]

    def queue(self, name: str) -> QueueSpec:
        for queue in self.queues:
            if queue.name == name:
                return queue
        raise KeyError(f"the topology declares no queue named {name!r}")

    def queues_of(self, consumer: str) -> tuple[QueueSpec, ...]:
        return tuple(q for q in self.queues if q.consumer == consumer)

    def subset(self, consumer: str) -> Topology:
        """What one consumer needs: the exchanges, its queues and the shared dead-letter queues.

        A consumer declares only this on start, so it never touches (or
        fails on) another team's queues.
        """
        # Not the delay levels: their last one dead-letters into pipeline.events,
        # and declaring it would need write there, which a consumer must not
        # have. `pipeline topology apply` or the scheduler declares them.
        shared = {"dead-letter-store", "notifier", "parked", "ledger", "control"}
        queues = tuple(q for q in self.queues if q.consumer == consumer or q.role in shared)
        names = {q.name for q in queues}
        bindings = tuple(b for b in self.bindings if b.queue in names and not b.to_exchange)
        return Topology(self.exchanges, queues, bindings)

    def merged(self, other: Topology) -> Topology:
        """This topology plus ``other``'s objects (names already present are kept once)."""
        exchanges = {e.name: e for e in (*self.exchanges, *other.exchanges)}
        queues = {q.name: q for q in (*self.queues, *other.queues)}
        bindings = dict.fromkeys((*self.bindings, *other.bindings))
        return Topology(tuple(exchanges.values()), tuple(queues.values()), tuple(bindings))
