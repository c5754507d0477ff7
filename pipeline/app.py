"""The registry of a deployment's consumers: the composition root's product."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from pipeline.consume.consumer import Consumer
from pipeline.errors import ConfigurationError
from pipeline.events import Event
from pipeline.settings import PipelineSettings
from topology import RetryLadder, Topology, build_topology

if TYPE_CHECKING:
    from pipeline.consume.process import WorkerPlan

ServiceFactory = Callable[[PipelineSettings], "WorkerPlan"]


class App:
    """All consumers of a deployment, and every event model they (or producers) use."""

    def __init__(
        self,
        consumers: Iterable[Consumer],
        events: Iterable[type[Event]] = (),
        services: Mapping[str, ServiceFactory] | None = None,
    ) -> None:
        # Services are workers that are not event consumers (the admin notifier).
        self.services: dict[str, ServiceFactory] = dict(services or {})
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

    @property
    def worker_names(self) -> list[str]:
        return sorted([*self.consumers, *self.services])

    def consumer(self, name: str) -> Consumer:
        """The consumer called ``name``; ``ConfigurationError`` lists the known ones."""
        try:
            return self.consumers[name]
        except KeyError:
            known = ", ".join(self.worker_names) or "(none)"
            raise ConfigurationError(f"no consumer named {name!r}; known: {known}") from None

    def topology(self, ladder: RetryLadder, delivery_limit: int) -> Topology:
        subscriptions = [c.subscription for c in self.consumers.values()]
        return build_topology(subscriptions, ladder, delivery_limit)


def load_app(path: str) -> App:
    """Import ``module:attribute`` (``PIPELINE_APP``) and return the App it names."""
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
