"""How one worker is wired: its queue, prefetch, processor, failure policy and middlewares.

``plan_for`` builds the plan of an event consumer (CloudEvents dispatch and
the retry ladder); an App's ``workers`` build the plans of workers that are
not event consumers (the admin notifier). ``plan_worker`` finds either by name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

from pipeline import tracing
from pipeline.app import App
from pipeline.consume.breaker import CircuitBreaker
from pipeline.consume.consumer import Consumer
from pipeline.consume.dispatch import EventDispatcher
from pipeline.consume.failure import LadderPolicy
from pipeline.consume.metrics_middleware import MetricsMiddleware
from pipeline.consume.protocols import (
    ConsumeGate,
    ConsumeMiddleware,
    FailurePolicy,
    Processor,
    WorkerService,
)
from pipeline.consume.rate import RateLimit, cap_prefetch
from pipeline.consume.tracing_middleware import TracingMiddleware
from pipeline.control.cancel import CancelGuard
from pipeline.control.log import ControlLog
from pipeline.control.pause import PauseSwitch
from pipeline.control.protocols import ControlHandler
from pipeline.ledger.recorder import LedgerRecorder
from pipeline.ops.metrics import PipelineMetrics
from pipeline.publish.outbound import ExchangeCache
from pipeline.settings import PipelineSettings
from topology import RetryLadder


class PolicyFactory(Protocol):
    """Builds a worker's failure policy on its outbound channel, with the worker's gate."""

    def __call__(self, exchanges: ExchangeCache, settings: PipelineSettings, /, *,
                 gate: ConsumeGate | None = None) -> FailurePolicy: ...


@dataclass(frozen=True)
class WorkerPlan:
    """Everything needed to run one queue's worker."""

    consumer: str
    queue: str
    prefetch: int
    processor: Processor
    failure: PolicyFactory
    middlewares: Sequence[ConsumeMiddleware] = field(default_factory=tuple)
    metrics: PipelineMetrics = field(default_factory=PipelineMetrics)  # served on /metrics
    # Called once consuming has stopped, before draining: a processor that holds
    # deliveries (the notifier's grouping window) settles them here.
    on_stop: Callable[[], Awaitable[None]] | None = None
    # Started before consuming, stopped after draining (the ledger recorder
    # flushes its last records there; the control log catches up first).
    services: Sequence[WorkerService] = field(default_factory=tuple)
    # The App whose runtime (startup hooks, state) the worker runs inside.
    app: App | None = None
    # The consumer's own retry rungs (RetryPolicy); None: the deployment's ladder.
    ladder: RetryLadder | None = None
    # Pauses and resumes the worker as the control log says (`pipeline consumers
    # pause`); None: a worker that cannot be paused (the admin notifier).
    switch: PauseSwitch | None = None
    # The consumer's express lane, consumed beside ``queue`` (None: no lane).
    express_queue: str | None = None
    # Opens after PIPELINE_BREAKER_FAILURES transient failures in a row (None: off).
    breaker: CircuitBreaker | None = None


def standard_middlewares(
    metrics: PipelineMetrics, event_types: Sequence[str] | None = None,
    handler_span: bool = False,
) -> tuple[ConsumeMiddleware, ...]:
    """Metrics outermost, then the CONSUMER span if a recording tracer is installed now.

    ``handler_span``: the processor opens a span of its own around the handler,
    which records the handler's exception; otherwise the CONSUMER span does.
    """
    middlewares: tuple[ConsumeMiddleware, ...] = (MetricsMiddleware(metrics, event_types),)
    if tracing.is_enabled():
        middlewares = (*middlewares, TracingMiddleware(record_exception=not handler_span))
    return middlewares


def plan_for(consumer: Consumer, settings: PipelineSettings, app: App | None = None) -> WorkerPlan:
    """The plan for an event consumer: CloudEvents dispatch + the retry ladder.

    With ``app``, handlers get its runtime (``Context.state``, follow-up
    publishing) and its middlewares wrap the consumer's own. Spans are opened
    per delivery only if a recording tracer provider is installed now
    (``tracing.is_enabled``): install it before building plans. The handler
    span too only with ``settings.trace_handler_span``.
    """
    metrics = PipelineMetrics()
    # One span per delivery unless the handler's own is asked for (docs/tracing.md).
    handler_span = settings.trace_handler_span and tracing.is_enabled()
    outermost, *inner = standard_middlewares(metrics, list(consumer.routes), handler_span)
    # Cancelled events are settled before the handler; the recorder sees every
    # outcome, the cancellation too. Both read or write the broker only from
    # services of their own (docs/ledger.md).
    guard = CancelGuard(consumer.name)
    switch = PauseSwitch(consumer.name)
    recorder = (LedgerRecorder(consumer.name, settings),) if settings.ledger else ()
    runtime = app.runtime if app is not None else None
    ladder = consumer.retry.ladder_for(settings.ladder)
    dispatcher = EventDispatcher(consumer, traced=handler_span, runtime=runtime, ladder=ladder)
    users = (*(app.middlewares if app is not None else ()), *consumer.middlewares)
    # Waiting for a rate slot happens after a cancel was honoured, before any span.
    limit = (RateLimit(consumer.rate_per_s),) if consumer.rate_per_s is not None else ()
    control = _control_log((guard, switch), consumer.name, settings)
    breaker = (CircuitBreaker(consumer.name, settings.breaker_failures,
                              settings.breaker_cooldown_s, metrics,
                              control[0].publish if control else None)
               if settings.breaker_failures else None)
    return WorkerPlan(
        consumer=consumer.name,
        queue=consumer.queue,
        prefetch=cap_prefetch(consumer.prefetch or settings.prefetch, consumer.rate_per_s),
        processor=dispatcher,
        failure=partial(LadderPolicy, retry=consumer.retry),
        # A delivery that arrives while paused (or the breaker is open) goes back
        # before anything records it; the breaker reads the failure policy's decision.
        middlewares=(outermost, switch, *((breaker,) if breaker else ()), *recorder, guard,
                     *limit, *inner, *users),
        metrics=metrics,
        services=(*control, *recorder),
        app=app,
        ladder=ladder,
        switch=switch,
        express_queue=consumer.express_queue,
        breaker=breaker,
    )


def _control_log(
    handlers: Sequence[ControlHandler], consumer: str, settings: PipelineSettings
) -> tuple[ControlLog, ...]:
    # memory:// has no stream queues, so no control log: cancel and pause need RabbitMQ.
    if settings.is_memory:
        return ()
    return (ControlLog(handlers, consumer, settings.confirm_timeout_s),)


def plan_worker(app: App, name: str, settings: PipelineSettings) -> WorkerPlan:
    """The plan of the worker called ``name``: an event consumer or one of ``app.workers``.

    The App's middlewares wrap every worker's deliveries, inside ours.
    Raises ``ConfigurationError`` listing the known names.
    """
    if name in app.workers:
        plan = app.workers[name](settings)
        return replace(plan, middlewares=(*plan.middlewares, *app.middlewares), app=app)
    return plan_for(app.consumer(name), settings, app)
