"""The registry of a deployment's workers: the composition root's product.

An App holds the event consumers (``Consumer``), any other workers by name
(``workers``: a factory of their ``WorkerPlan``, like the admin notifier) and
every event model producers use. ``PIPELINE_APP`` names it as
``package.module:attribute``.

Optionally: middlewares around every worker's deliveries, and what a worker
process starts and stops for its handlers (``lifespan``, or ``on_startup`` /
``on_shutdown`` with a ``state``; ``pipeline.consume.runtime``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipeline.consume.consumer import Consumer
from pipeline.consume.runtime import AppRuntime, Hook, LifespanFactory
from pipeline.errors import ConfigurationError
from pipeline.events import Event
from topology import DEFAULT_REPLICAS, RetryLadder, Topology, build_topology, replicated
from topology.delay import delay_topology
from topology.ledger import control_topology, ledger_topology
from topology.scheduler import scheduler_topology

if TYPE_CHECKING:
    from pipeline.consume.protocols import ConsumeMiddleware, PlanFactory
    from pipeline.schedule.spec import Schedule


class App:
    """All consumers of a deployment, and every event model they (or producers) use."""

    def __init__(
        self,
        consumers: Iterable[Consumer],
        events: Iterable[type[Event]] = (),
        workers: Mapping[str, PlanFactory] | None = None,
        *,
        middlewares: Sequence[ConsumeMiddleware] = (),
        lifespan: LifespanFactory | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        state: Any = None,
        schedules: Iterable[Schedule] = (),
    ) -> None:
        """Register ``consumers`` (and ``events`` only producers know).

        ``middlewares`` wrap every worker's deliveries, outside each
        consumer's own. ``lifespan`` is ``lambda app: <async context
        manager>`` whose yield is the state handlers see (``Context.state``);
        or ``on_startup``/``on_shutdown`` hooks called with ``state``. Raises
        ``ConfigurationError`` for a consumer registered twice or both kinds
        of hooks. ``schedules`` are run by ``pipeline scheduler``
        (docs/scheduling.md); each names an event type of the App.
        """
        self.middlewares = tuple(middlewares)
        self.runtime = AppRuntime(lifespan, on_startup, on_shutdown, state)
        # Workers that are not event consumers (the admin notifier), by name.
        self.workers: dict[str, PlanFactory] = dict(workers or {})
        self.consumers: dict[str, Consumer] = {}
        for consumer in consumers:
            if consumer.name in self.consumers:
                raise ConfigurationError(f"consumer {consumer.name!r} is registered twice")
            self.consumers[consumer.name] = consumer
        self.events: dict[str, type[Event]] = {}
        for model in events:
            self.events[model.event_type] = model
        for consumer in self.consumers.values():
            for route in consumer.routes.values():
                self.events.setdefault(route.event_type, route.model)
        self.schedules: dict[str, Schedule] = {}
        for schedule in schedules:
            if schedule.name in self.schedules:
                raise ConfigurationError(f"schedule {schedule.name!r} is declared twice")
            if schedule.event_type not in self.events:
                raise ConfigurationError(
                    f"schedule {schedule.name!r} publishes {schedule.event_type!r}, which is "
                    "no event type of this App: pass its model in App(events=[...])"
                )
            try:
                self.events[schedule.event_type].model_validate(dict(schedule.data))
            except ValidationError as exc:
                raise ConfigurationError(
                    f"schedule {schedule.name!r}: data does not fit {schedule.event_type!r}: "
                    + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                for e in exc.errors())
                ) from None
            self.schedules[schedule.name] = schedule

    @property
    def worker_names(self) -> list[str]:
        return sorted([*self.consumers, *self.workers])

    def consumer(self, name: str) -> Consumer:
        """The consumer called ``name``; ``ConfigurationError`` lists the known ones."""
        try:
            return self.consumers[name]
        except KeyError:
            known = ", ".join(self.worker_names) or "(none)"
            raise ConfigurationError(f"no consumer named {name!r}; known: {known}") from None

    def topology(
        self, ladder: RetryLadder, delivery_limit: int, ledger: bool = True,
        replicas: int = DEFAULT_REPLICAS,
    ) -> Topology:
        """Everything to declare: consumers, rungs, dead letters, the control log, the ledger.

        Every quorum queue and stream is declared on ``replicas`` nodes with
        balanced leaders (``PIPELINE_QUEUE_REPLICAS``, ``topology.replication``).
        """
        subscriptions = [c.subscription for c in self.consumers.values()]
        topology = build_topology(subscriptions, ladder, delivery_limit)
        topology = topology.merged(control_topology()).merged(delay_topology(subscriptions))
        if ledger:
            topology = topology.merged(ledger_topology(subscriptions))
        if self.schedules:
            topology = topology.merged(scheduler_topology())
        return replicated(topology, replicas)


def load_app(path: str | None) -> App:
    """Import ``module:attribute`` (``PIPELINE_APP``) and return the App it names.

    Raises ``ConfigurationError`` saying what to set when ``path`` is unset or wrong.
    """
    if not path:
        raise ConfigurationError(
            "PIPELINE_APP is not set: point it at your App as 'package.module:attribute', "
            "e.g. PIPELINE_APP=myservice.consumers:app (this repository's demo app is "
            "consumers.registry:app)"
        )
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"PIPELINE_APP={path!r} must look like 'package.module:app'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} (PIPELINE_APP): {exc}") from None
    app = getattr(module, attribute, None)
    if callable(app) and not isinstance(app, App):
        app = app()
    if not isinstance(app, App):
        raise ConfigurationError(f"{path!r} (PIPELINE_APP) is not a pipeline.App")
    return app
