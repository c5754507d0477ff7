"""Run one worker as a process: connect, declare, consume, drain on a signal, exit.

Exit codes (also in the README):
    0  stopped on SIGTERM/SIGINT after draining (or with the rest requeued)
    1  unexpected error (a bug; the traceback is logged)
    2  configuration error (unknown consumer, bad setting)
    3  the broker could not be reached
    4  the broker's topology differs from ours (see `pipeline topology check`)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pipeline import tracing
from pipeline.connection import connect
from pipeline.consume.consumer import Consumer
from pipeline.consume.dispatch import EventDispatcher
from pipeline.consume.failure import FailurePolicy, LadderPolicy
from pipeline.consume.middleware import ConsumeMiddleware
from pipeline.consume.tracing_middleware import TracingMiddleware
from pipeline.consume.worker import Processor, Worker
from pipeline.errors import BrokerUnreachableError, ConfigurationError, TopologyDriftError
from pipeline.ops.drift import refuse_dangerous_drift
from pipeline.ops.health import Readiness, serving_health
from pipeline.ops.metrics import MetricsMiddleware, PipelineMetrics
from pipeline.publish.outbound import ExchangeCache
from pipeline.settings import PipelineSettings
from topology import Topology, TopologyMismatchError, apply_topology

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_TOPOLOGY = 4

# After draining in-flight deliveries, wait this long before closing (see _shut_down).
ACK_SETTLE_S = 0.5

PolicyFactory = Callable[[ExchangeCache, PipelineSettings], FailurePolicy]


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


def plan_for(consumer: Consumer, settings: PipelineSettings) -> WorkerPlan:
    """The plan for an event consumer: CloudEvents dispatch + the retry ladder.

    Spans are opened per delivery only if a recording tracer provider is
    installed now (``tracing.is_enabled``): install it before building plans.
    """
    metrics = PipelineMetrics()
    traced = tracing.is_enabled()
    middlewares: tuple[ConsumeMiddleware, ...] = (
        MetricsMiddleware(metrics, settings.ladder, consumer.routes),
    )
    if traced:
        middlewares = (*middlewares, TracingMiddleware())
    return WorkerPlan(
        consumer=consumer.name,
        queue=consumer.queue,
        prefetch=consumer.prefetch or settings.prefetch,
        processor=EventDispatcher(consumer, traced=traced),
        failure=LadderPolicy,
        middlewares=middlewares,
        metrics=metrics,
    )


class StopSignal:
    """First SIGTERM/SIGINT: drain. Second: stop at once (unacked work is requeued)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            log.warning("second %s: stopping now; unfinished deliveries return to the queue",
                        sig.name)
            self.force.set()
        else:
            log.info("%s received: no new deliveries, finishing in-flight ones", sig.name)
            self.stop.set()


async def run_worker(
    settings: PipelineSettings,
    plan: WorkerPlan,
    topology: Topology,
    stop: StopSignal | None = None,
) -> int:
    """Run ``plan`` until a stop signal; return a documented exit code.

    Without ``stop``, SIGTERM/SIGINT handlers are installed; tests pass their
    own ``StopSignal`` and set it.
    """
    if stop is None:
        stop = StopSignal()
        stop.install()
    probe = Readiness()
    try:
        async with serving_health(settings, probe, plan.metrics, topology.queues):
            return await _run(settings, plan, topology, stop, probe)
    except ConfigurationError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except BrokerUnreachableError as exc:
        log.error("%s", exc)
        return EXIT_UNREACHABLE
    except (TopologyMismatchError, TopologyDriftError) as exc:
        log.error("refusing to start %s: %s", plan.consumer, exc)
        return EXIT_TOPOLOGY


async def _run(
    settings: PipelineSettings,
    plan: WorkerPlan,
    topology: Topology,
    stop: StopSignal,
    probe: Readiness,
) -> int:
    connection = await connect(settings, f"{settings.service_name}.{plan.consumer}")
    probe.watch("connected", connection.connected.is_set)  # cleared while reconnecting
    try:
        await apply_topology(connection, topology)
        await refuse_dangerous_drift(settings, topology)  # policies can undo our arguments
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        probe.mark("topology")
        policy = plan.failure(ExchangeCache(channel, plan.metrics.observe_confirm), settings)
        worker = Worker(channel, plan.consumer, plan.queue, plan.processor, policy,
                        plan.middlewares)
        await worker.start(plan.prefetch)
        probe.watch("consuming", lambda: worker.is_consuming)  # false once draining
        log.info(
            "consumer %s consuming %s on %s (prefetch %d, retry ladder %s)",
            plan.consumer, plan.queue, settings.safe_amqp_url, plan.prefetch, settings.ladder,
        )
        started = time.monotonic()
        await stop.stop.wait()
        await _shut_down(worker, settings.shutdown_timeout_s, stop, plan.on_stop)
        log.info(
            "consumer %s stopped after %.0fs: %s",
            plan.consumer, time.monotonic() - started, _counters_line(worker),
        )
        return EXIT_OK
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _shut_down(
    worker: Worker,
    timeout_s: float,
    stop: StopSignal,
    on_stop: Callable[[], Awaitable[None]] | None,
) -> None:
    await worker.stop_consuming()
    if on_stop is not None:
        try:
            await on_stop()
        except Exception:
            log.exception("stop hook of %s failed; draining anyway", worker.consumer)
    busy = worker.in_flight > 0
    drained = asyncio.ensure_future(worker.drain(timeout_s))
    forced = asyncio.ensure_future(stop.force.wait())
    await asyncio.wait({drained, forced}, return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if not (drained.done() and drained.result()):
        drained.cancel()
        log.warning(
            "%d deliveries still in flight after %.0fs; they return to %s unacked",
            worker.in_flight, timeout_s, worker.queue_name,
        )
    elif busy:
        # The drain ends with a burst of acks. RabbitMQ 3.x's quorum-queue client
        # holds back settles beyond 32 unapplied commands and drops them if the
        # channel closes first, so those messages would be delivered again
        # (4-38 of 100 in tests/faults/test_graceful_shutdown.py). A moment lets
        # the broker apply them before we close.
        await asyncio.sleep(ACK_SETTLE_S)


def _counters_line(worker: Worker) -> str:
    counts = worker.counters
    return ", ".join(f"{name}={counts.get(name, 0)}" for name in
                     ("acked", "retried", "dead-lettered", "parked", "requeued"))
