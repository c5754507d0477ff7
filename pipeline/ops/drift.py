"""Compare what the broker has with what the pipeline declares.

Declaring detects a queue whose *arguments* differ (PRECONDITION_FAILED),
but not a *policy*: a user or operator policy can change a queue's
delivery limit, dead-lettering, overflow, TTL or length after the fact,
and RabbitMQ 4.x gives quorum queues a delivery limit of 20 when none is
set. ``pipeline topology check`` reports every difference; a consumer
refuses to start on a dangerous one (one that can lose or loop messages).

A consumer checks its own queues only, and reads each one's object
(``/api/queues/VHOST/NAME``: its arguments, ``policy``, ``operator_policy``
and ``effective_policy_definition``), which its own management-tagged user
may read on every RabbitMQ version; which users may list
``/api/policies`` differs between versions. A check that cannot run stops
the consumer (``PIPELINE_DRIFT_CHECK=fail``, the default) or, with
``warn``, logs a warning: failing open would let a policy that drops or
loops messages go unnoticed whenever the API refuses the credentials.

How RabbitMQ combines a policy with a queue argument (rabbit_quorum_queue,
``gather_policy_config``): the lower value wins for delivery-limit,
message-ttl, max-length(-bytes) and expires; the queue argument wins for
dead-letter-exchange, -routing-key and -strategy; the policy wins for
overflow (4.x). We compute the effective value the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pipeline.declare import without_delays, without_streams
from pipeline.errors import TopologyDriftError
from pipeline.ops.management import ManagementNotFoundError, open_management
from pipeline.ops.replicas import read_nodes, replica_drift
from pipeline.ops.retired import find_retired_rungs
from pipeline.settings import PipelineSettings
from topology import QueueSpec, Topology

log = logging.getLogger(__name__)

Policy = Mapping[str, Any]  # one entry of /api/policies or /api/operator-policies

LOWEST_WINS = frozenset(
    {"delivery-limit", "message-ttl", "max-length", "max-length-bytes", "expires"}
)
ARGUMENT_WINS = frozenset({"dead-letter-exchange", "dead-letter-routing-key",
                           "dead-letter-strategy"})
POLICY_WINS = frozenset({"overflow"})
QUORUM_ONLY = frozenset({"delivery-limit", "dead-letter-strategy"})
# Policy keys that can drop, expire, loop or stop dead-lettering messages.
WATCHED = LOWEST_WINS | ARGUMENT_WINS | POLICY_WINS
_QUEUE_TARGETS = {"all", "queues", "classic_queues", "quorum_queues"}


@dataclass(frozen=True)
class Drift:
    """One difference between the broker and the declared topology."""

    kind: str  # queue, exchange, binding
    name: str
    setting: str
    declared: Any
    on_broker: Any
    source: str  # "arguments", "policy NAME", "operator-policy NAME", "missing"
    dangerous: bool

    def describe(self) -> str:
        if self.source == "retired":
            return (f"{self.kind} {self.name}: a retired rung holding about {self.on_broker} "
                    "messages (the pipeline declares this consumer's rungs under other names)")
        return (
            f"{self.kind} {self.name}: {self.setting} is {_show(self.on_broker)} on the broker "
            f"({self.source}) but the pipeline declares {_show(self.declared)}"
        )

    def fix(self, vhost: str = "VHOST") -> str:
        """What an operator should do about it, as one sentence."""
        if self.source.startswith(("policy", "operator-policy")):
            kind, _, name = self.source.partition(" ")
            command = "clear_policy" if kind == "policy" else "clear_operator_policy"
            return (f"change or remove {kind} {name!r} so it no longer sets {self.setting} on "
                    f"{self.name} (`rabbitmqctl {command} -p {vhost} {name}`)")
        if self.source == "missing":
            return "run `pipeline topology apply`"
        if self.source == "retired":
            return ("it returns its messages to its consumer's queue as they expire; "
                    "`pipeline topology migrate` deletes it once empty (docs/retries.md)")
        if self.source == "members":
            return ("add members on running nodes: `rabbitmq-queues grow <node> all` "
                    "(or `rabbitmq-queues add_member`)")
        return (f"drain and delete {self.name}, then run `pipeline topology apply` "
                "(the pipeline never deletes a queue itself)")


def _show(value: Any) -> str:
    return "(unset)" if value is None else str(value)


def _applies(policy: Mapping[str, Any], name: str) -> bool:
    if policy.get("apply-to", "all") not in _QUEUE_TARGETS:
        return False
    try:
        return re.search(str(policy.get("pattern", "")), name) is not None
    except re.error:  # an Erlang regex Python cannot read: assume it may apply
        return True


def _winner(policies: Sequence[Policy], kind: str, name: str) -> Policy | None:
    # Only the highest-priority matching policy of each kind applies to a queue.
    matching = [p for p in policies if p.get("kind") == kind and _applies(p, name)]
    return max(matching, key=lambda p: p.get("priority", 0), default=None)


def _effective(key: str, declared: Any, policy_value: Any) -> Any:
    if key in LOWEST_WINS:
        values = [v for v in (declared, policy_value) if isinstance(v, int | float)]
        if key == "delivery-limit" and any(v < 0 for v in values):
            return max(values)  # 4.x: -1 means "no limit" and beats a finite one
        return min(values) if values else None
    if key in ARGUMENT_WINS:
        return declared if declared is not None else policy_value
    return policy_value


# The lowest delivery limit on the dead-letter store that is still harmless.
STORE_SAFE_DELIVERY_LIMIT = 20


def _is_dangerous(key: str, declared: Any) -> bool:
    if declared is not None:
        return True
    # Undeclared dead-letter-* settings reroute nothing we rely on: every
    # queue of ours that dead-letters declares its own, and the argument wins.
    # An undeclared delivery-limit is on a rung, which has no consumers.
    return key not in ARGUMENT_WINS and key != "delivery-limit"


def queue_policy_drift(spec: QueueSpec, policies: Sequence[Mapping[str, Any]]) -> list[Drift]:
    """Policies that change what ``spec`` declares (or add a watched setting)."""
    drifts = []
    for kind in ("policy", "operator-policy"):
        policy = _winner(policies, kind, spec.name)
        if policy is None:
            continue
        definition = policy.get("definition") or {}
        for key in sorted(set(definition) & WATCHED):
            if key in QUORUM_ONLY and spec.queue_type != "quorum":
                continue
            declared = spec.arguments.get(f"x-{key}")
            effective = _effective(key, declared, definition[key])
            if effective != declared:
                dangerous = _is_dangerous(key, declared) and not _store_limit_holds(
                    spec, key, effective)
                drifts.append(Drift("queue", spec.name, key, declared, definition[key],
                                    f"{kind} {policy.get('name')}", dangerous))
    return drifts


def _store_limit_holds(spec: QueueSpec, key: str, effective: Any) -> bool:
    # The store's delivery limit is set out of reach only for the returns of
    # interrupted or read-only passes on RabbitMQ 4.0-4.2 (pipeline/store/scan.py);
    # a policy that lowers it but keeps 4.x's default of 20 changes nothing
    # a user would notice. Lower, a few listings could drop dead letters.
    return (spec.role == "dead-letter-store" and key == "delivery-limit"
            and isinstance(effective, int) and effective >= STORE_SAFE_DELIVERY_LIMIT)


def queue_argument_drift(spec: QueueSpec, on_broker: Mapping[str, Any] | None) -> list[Drift]:
    """A missing queue, or arguments on the broker that differ from ``spec``."""
    if on_broker is None:
        return [Drift("queue", spec.name, "existence", "declared", None, "missing", False)]
    actual = dict(on_broker.get("arguments") or {})
    drifts = []
    for key in sorted(set(actual) | set(spec.arguments)):
        declared, found = spec.arguments.get(key), actual.get(key)
        if declared == found or (key == "x-queue-type" and found is None and declared == "classic"):
            continue
        dangerous = key == "x-queue-type" or key.removeprefix("x-") in WATCHED
        drifts.append(Drift("queue", spec.name, key, declared, found, "arguments", dangerous))
    return drifts


async def find_drift(settings: PipelineSettings, topology: Topology) -> list[Drift]:
    """Every difference between the broker's vhost and ``topology``.

    Raises ``BrokerUnreachableError`` when the management API does not answer.
    """
    if settings.is_memory:  # no streams, no headers exchanges: not declared there
        topology = without_delays(without_streams(topology))
    async with open_management(settings) as api:
        vhost = quote(api.vhost, safe="")
        queues = {q["name"]: q for q in await api.queues()}
        policies = await api.policies()
        exchanges = {e["name"]: e for e in await api.get(f"/exchanges/{vhost}")}
        bindings = {(b["source"], b["destination"], b["routing_key"],
                     b.get("destination_type") == "exchange")
                    for b in await api.get(f"/bindings/{vhost}")}
        nodes = await read_nodes(api)
    drifts: list[Drift] = []
    for exchange in topology.exchanges:
        found = exchanges.get(exchange.name)
        if found is None or found.get("type") != exchange.type:
            drifts.append(Drift("exchange", exchange.name, "type", exchange.type,
                                found and found.get("type"), "missing" if found is None
                                else "arguments", dangerous=found is not None))
    for spec in topology.queues:
        drifts.extend(queue_argument_drift(spec, queues.get(spec.name)))
        drifts.extend(queue_policy_drift(spec, policies))
    # Rungs of our consumers under names no longer declared (an old naming, a
    # changed ladder): reported as retired, not as foreign queues.
    drifts.extend(Drift("queue", r.name, "retired-rung", None, r.messages, "retired", False)
                  for r in find_retired_rungs(topology, queues.values()))
    # Fewer members than declared: the queue was declared while nodes were down.
    drifts.extend(Drift("queue", name, "replicas", declared, members, "members", False)
                  for name, declared, members in replica_drift(topology, queues, nodes))
    for binding in topology.bindings:
        found = (binding.exchange, binding.queue, binding.pattern, binding.to_exchange)
        if found not in bindings:
            drifts.append(Drift("binding", f"{binding.exchange} -> {binding.queue}", "pattern",
                                binding.pattern or "(all)", None, "missing", False))
    return drifts


def queue_object_drift(spec: QueueSpec, queue: Mapping[str, Any] | None) -> list[Drift]:
    """Drift of ``spec`` read from its queue object alone (arguments and effective policy).

    The object names the winning user policy and operator policy and gives
    their merged definition; a setting there is attributed to the user
    policy, or to the operator policy when there is no user policy.
    """
    if queue is None:
        return queue_argument_drift(spec, None)
    drifts = queue_argument_drift(spec, queue)
    definition = queue.get("effective_policy_definition") or {}
    user, operator = queue.get("policy") or None, queue.get("operator_policy") or None
    if definition and (user or operator):
        kind = "policy" if user else "operator-policy"
        name = user if operator is None else (operator if user is None
                                             else f"{user} (or operator-policy {operator})")
        effective = {"kind": kind, "name": name, "pattern": "", "apply-to": "queues",
                     "definition": definition}
        drifts.extend(queue_policy_drift(spec, [effective]))
    return drifts


async def find_queue_drift(settings: PipelineSettings, topology: Topology) -> list[Drift]:
    """Drift of ``topology``'s queues, from each queue's own object (a consumer's check).

    Raises what the management client raises: ``BrokerUnreachableError``,
    ``CredentialsRefusedError``, ``ConfigurationError`` (HTTP 403 and others).
    """
    if settings.is_memory:
        topology = without_delays(without_streams(topology))
    drifts: list[Drift] = []
    async with open_management(settings) as api:
        for spec in topology.queues:
            try:
                queue: dict[str, Any] | None = await api.queue(spec.name)
            except ManagementNotFoundError:
                queue = None
            drifts.extend(queue_object_drift(spec, queue))
    return drifts


async def refuse_dangerous_drift(settings: PipelineSettings, topology: Topology) -> None:
    """Raise ``TopologyDriftError`` if the broker could lose or loop this topology's messages.

    Called by a worker after declaring, for its own queues. When the check
    cannot run (the management API is unreachable, refuses the user, or
    answers oddly) it raises too, unless ``PIPELINE_DRIFT_CHECK=warn``.
    """
    try:
        drifts = await find_queue_drift(settings, topology)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if settings.drift_check == "warn":
            log.warning("could not check broker policies for drift (%s); starting anyway "
                        "because PIPELINE_DRIFT_CHECK=warn", reason)
            return
        raise TopologyDriftError(
            f"cannot check the broker's policies for drift ({reason}), so the consumer does "
            "not start; give its user the management tag and a reachable "
            "PIPELINE_MANAGEMENT_URL, or set PIPELINE_DRIFT_CHECK=warn to start with a warning"
        ) from None
    dangerous = [d for d in drifts if d.dangerous]
    for drift in drifts:
        if not drift.dangerous:
            log.info("topology drift (harmless): %s", drift.describe())
    if dangerous:
        raise TopologyDriftError(
            "; ".join(f"{d.describe()}: {d.fix(settings.vhost)}" for d in dangerous)
            + ". Run `pipeline topology check` to see every difference"
        )
