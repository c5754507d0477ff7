"""Health and metrics of a process that runs several workers (``python -m consumers a b``).

Each worker keeps its own ``Readiness`` and ``PipelineMetrics``; the process
serves one ``/readyz`` (ready when every worker is) and one ``/metrics``
that merges the workers' metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from pipeline.ops.health import Readiness


class GroupReadiness(Readiness):
    """Ready when every worker's probe is; checks reported as ``worker.check``."""

    def __init__(self, probes: Mapping[str, Readiness]) -> None:
        super().__init__(())
        self._probes = dict(probes)

    def report(self) -> dict[str, bool]:
        return {
            f"{worker}.{check}": passed
            for worker, probe in self._probes.items()
            for check, passed in probe.report().items()
        }


class MergedCollector:
    """Every family of several registries, once: samples joined, repeats dropped.

    Families with the same name (``pipeline_deliveries`` of each worker) are
    joined; a sample already seen under the same labels (the process
    collector of each worker, reporting the same process) is kept once.
    """

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self._registries = tuple(registries)

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for registry in self._registries:
            for family in registry.collect():
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        target.samples.append(sample)
        return list(merged.values())


class GroupMetrics:
    """What the health server needs of metrics: one registry, here the merged one."""

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(MergedCollector(registries))
