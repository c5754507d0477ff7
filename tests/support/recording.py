"""A consume middleware that records every delivery a worker sees (tests only)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from pipeline import Consumer, PipelineSettings
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.middleware import CallNext
from pipeline.consume.plan import WorkerPlan, plan_for


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when the delivery arrived
    message_id: str | None
    body: bytes
    headers: dict[str, Any]
    exchange: str | None
    routing_key: str | None
    outcome: Outcome | None


class DeliveryRecorder:
    """Outermost middleware: what arrived, when, and how it ended."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, delivery: Delivery, call_next: CallNext) -> Outcome:
        at = time.monotonic()
        message = delivery.message
        outcome = await call_next(delivery)
        self.seen.append(Seen(at, message.message_id, message.body, dict(message.headers or {}),
                              message.exchange, message.routing_key, outcome))
        return outcome


def recorded_plan(
    consumer: Consumer, settings: PipelineSettings
) -> tuple[WorkerPlan, DeliveryRecorder]:
    """The consumer's normal plan with a recorder in front of its middlewares."""
    recorder = DeliveryRecorder()
    plan = plan_for(consumer, settings)
    return dataclasses.replace(plan, middlewares=(recorder, *plan.middlewares)), recorder
