"""Run one worker as a process: connect, declare, consume, drain on a signal, exit.

``run_named`` is what ``python -m consumers NAME`` and ``pipeline consume NAME``
run. It returns a ``pipeline.exits.ExitCode``: 0 after draining on
SIGTERM/SIGINT, 2 for a configuration error, 3 when the broker cannot be
reached, 4 when the broker's topology differs from ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractRobustConnection

from pipeline.app import App, load_app
from pipeline.connection import connect
from pipeline.consume.gate import Gate
from pipeline.consume.plan import WorkerPlan, plan_worker
from pipeline.consume.protocols import WorkerService
from pipeline.consume.time_limit import run_to_end
from pipeline.consume.worker import Worker
from pipeline.control.pause import PauseSwitch
from pipeline.declare import declare_or_verify
from pipeline.errors import PipelineError
from pipeline.exits import ExitCode, exit_code_for
from pipeline.ops.drift import refuse_dangerous_drift
from pipeline.ops.health import Readiness, serving_health
from pipeline.publish.outbound import ExchangeCache, confirming_channel
from pipeline.settings import PipelineSettings
from topology import Topology

log = logging.getLogger(__name__)

# After draining in-flight deliveries, wait this long before closing (see _shut_down).
ACK_SETTLE_S = 0.5


def run_named(settings: PipelineSettings, name: str, app: App | None = None) -> ExitCode:
    """Run the worker called ``name`` of ``app`` (default: ``PIPELINE_APP``) until stopped."""
    try:
        app = app or load_app(settings.app)
        plan = plan_worker(app, name, settings)
        topology = app.topology(settings.ladder, settings.delivery_limit, settings.ledger,
                                settings.queue_replicas)
        topology = topology.subset(plan.consumer)
    except PipelineError as exc:
        log.error("configuration error: %s", exc)
        return exit_code_for(exc)
    # Not asyncio.run: a handler that ignored its time limit's cancellation must not
    # keep the process from exiting (time_limit.py).
    return run_to_end(run_worker(settings, plan, topology))


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
) -> ExitCode:
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
            return await serve_worker(settings, plan, topology, stop, probe)
    except PipelineError as exc:  # the health port cannot be served
        log.error("refusing to start %s: %s", plan.consumer, exc)
        return exit_code_for(exc)


async def serve_worker(
    settings: PipelineSettings,
    plan: WorkerPlan,
    topology: Topology,
    stop: StopSignal,
    probe: Readiness,
) -> ExitCode:
    """Run ``plan`` inside its App's runtime until ``stop``, in a process already serving health.

    ``run_worker`` (one worker) and ``run_group`` (several in one process) both use it.
    """
    try:
        async with contextlib.AsyncExitStack() as app_scope:
            if not await _start_app(app_scope, plan, settings):
                return ExitCode.ERROR
            return await _run(settings, plan, topology, stop, probe)
    except PipelineError as exc:
        # Configuration, an unreachable broker, a topology that differs: one
        # line saying what to fix, and the documented exit code.
        log.error("refusing to start %s: %s", plan.consumer, exc)
        return exit_code_for(exc)


async def _start_app(
    scope: contextlib.AsyncExitStack, plan: WorkerPlan, settings: PipelineSettings
) -> bool:
    """Enter the App's runtime (its startup hooks run once per process); False if they failed.

    A ``PipelineError`` from a hook propagates (its documented exit code).
    """
    if plan.app is None:
        return True
    try:
        await scope.enter_async_context(plan.app.runtime.running(plan.app, settings))
    except PipelineError:
        raise
    except Exception:
        log.exception("refusing to start %s: the App's startup (lifespan or on_startup) "
                      "failed", plan.consumer)
        return False
    return True


async def _run(
    settings: PipelineSettings,
    plan: WorkerPlan,
    topology: Topology,
    stop: StopSignal,
    probe: Readiness,
) -> ExitCode:
    connection = await connect(settings, f"{settings.service_name}.{plan.consumer}")
    probe.watch("connected", connection.connected.is_set)  # cleared while reconnecting
    started_services: list[WorkerService] = []
    outbound: AbstractRobustConnection | None = None
    gate = Gate(f"consumer {plan.consumer}")
    try:
        await declare_or_verify(connection, topology)
        await refuse_dangerous_drift(settings, topology)  # policies can undo our arguments
        # Failure copies (and the ledger's records) go out on a connection of
        # their own: an alarm blocks a connection that publishes, all of its
        # frames, so on one connection it would hold back the acks of the
        # handlers that succeeded too (docs/retries.md).
        outbound = await connect(settings, f"{settings.service_name}.{plan.consumer}.outbound")
        open_outbound = confirming_channel(outbound)
        probe.mark("topology")
        policy = plan.failure(
            ExchangeCache(await open_outbound(), plan.metrics.observe_confirm,
                          open_channel=open_outbound, drain_timeout_s=settings.confirm_timeout_s),
            settings, gate=gate)
        for service in plan.services:
            await service.start(outbound if _publishes(service) else connection)
            started_services.append(service)
        worker = Worker(await connection.channel(), plan.consumer, plan.queue, plan.processor,
                        policy, plan.middlewares, plan.express_queue)
        if plan.breaker is not None:
            plan.breaker.attach(worker)  # before the first delivery can trip it
        switch = plan.switch
        gate.attach(_GateTarget(worker, switch))
        if switch is not None:
            await switch.attach(worker, plan.prefetch)  # not consuming while paused
        else:
            await worker.start(plan.prefetch)
        # False once draining; a paused worker is ready (it is where it should be).
        probe.watch("consuming", lambda: worker.is_consuming or worker.is_held_paused)
        log.info(
            "consumer %s consuming %s on %s (prefetch %d, retry ladder %s)",
            plan.consumer, plan.queue, settings.safe_amqp_url, plan.prefetch,
            plan.ladder or settings.ladder,
        )
        started = time.monotonic()
        await stop.stop.wait()
        gate.shut()  # a held delivery goes back to its queue rather than wait out the drain
        if switch is not None:
            await switch.detach()  # no resume after this point
        if plan.breaker is not None:
            await plan.breaker.detach()
        await _shut_down(worker, settings.shutdown_timeout_s, stop, plan.on_stop)
        log.info(
            "consumer %s stopped after %.0fs: %s",
            plan.consumer, time.monotonic() - started, _counters_line(worker),
        )
        return ExitCode.OK
    finally:
        await _stop_services(started_services)
        for opened in (outbound, connection):
            if opened is not None:
                with contextlib.suppress(Exception):
                    await opened.close()


class _GateTarget:
    """What the consume gate pauses: the worker, resumed only if no operator paused it."""

    def __init__(self, worker: Worker, switch: PauseSwitch | None) -> None:
        self._worker = worker
        self._switch = switch

    async def pause(self) -> None:
        await self._worker.pause()

    async def resume(self) -> None:
        if self._switch is None or not self._switch.is_paused:
            await self._worker.resume()


def _publishes(service: WorkerService) -> bool:
    """A service that publishes as it goes (``publishes = True``) uses the outbound connection."""
    return bool(getattr(service, "publishes", False))


async def _stop_services(services: list[WorkerService]) -> None:
    for service in reversed(services):
        try:
            await service.stop()
        except Exception:
            log.exception("stopping %s failed", type(service).__name__)


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
                     ("acked", "retried", "dead-lettered", "parked", "requeued", "cancelled",
                      "duplicate"))
