"""Which consumers an event is expected at: AMQP topic matching of their patterns.

The ledger marks each consumer bound for an event's routing key ``pending``
as soon as it sees the event published, before any worker reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from topology import Subscription


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # '*' is exactly one word, '#' zero or more words (www.rabbitmq.com/tutorials/tutorial-five).
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    regex = r"\.".join(parts)
    # '#' may also swallow the dot next to it: "a.#" matches "a".
    regex = regex.replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+)*")
    regex = regex.replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+\.)*")
    return re.compile(f"^{regex}$")


class ExpectedConsumers:
    """Routing key -> the consumers whose patterns match it (cached)."""

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self._bindings = [
            (sub.consumer, _pattern_regex(pattern))
            for sub in subscriptions for pattern in sub.patterns
        ]
        self.for_key = lru_cache(maxsize=4096)(self._match)

    def _match(self, routing_key: str) -> list[str]:
        return sorted({consumer for consumer, regex in self._bindings
                       if regex.match(routing_key)})

    def __call__(self, routing_key: str) -> list[str]:
        return self.for_key(routing_key)
