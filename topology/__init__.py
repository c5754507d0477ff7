"""Exchanges, queues, bindings and retry rungs as code."""

from topology import naming
from topology.build import Subscription, build_topology
from topology.declare import Mismatch, TopologyMismatchError, apply_topology
from topology.ladder import DEFAULT_LADDER, RetryLadder, RetryRung, parse_duration
from topology.model import BindingSpec, ExchangeSpec, QueueSpec, Topology
from topology.replication import DEFAULT_REPLICAS, declared_replicas, replicated

__all__ = [
    "DEFAULT_LADDER",
    "DEFAULT_REPLICAS",
    "BindingSpec",
    "ExchangeSpec",
    "Mismatch",
    "QueueSpec",
    "RetryLadder",
    "RetryRung",
    "Subscription",
    "Topology",
    "TopologyMismatchError",
    "apply_topology",
    "build_topology",
    "declared_replicas",
    "naming",
    "parse_duration",
    "replicated",
]
