"""Is everything flowing? One snapshot of the pipeline's queues, and what is wrong.

Read from the management API (``pipeline status`` prints it). A problem is
one of these, each with what to do (docs/operations.md):

    missing-queue        the topology declares queues the broker does not have
    no-consumer          a consumer's queue (or the notifier's, or the ledger's) has
                         ready messages and no consumer attached
    dead-letters-stored  the dead-letter store holds more than ``max_stored``
    store-growing        events reached the store during the broker's last
                         sampling window (its publish rate is above 0)
    notices-parked       the admin notifier parked notices it could not deliver
    paused               an operator paused a consumer (``pipeline consumers pause``):
                         its events wait in its queue until it is resumed
    breaker-open         a replica's circuit breaker is open (a downstream is failing):
                         its events wait in its queue until a probe succeeds
    delayed-unroutable   delayed events came due with no queue bound for their routing
                         key: they wait in the last delay level (docs/scheduling.md)
    node-down, majority-lost, replicas-offline, replicas-missing
                         a cluster node or a queue's replicas (``pipeline.ops.replicas``)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import quote

from pipeline.errors import ConfigurationError, PipelineError
from pipeline.ops.management import ManagementNotFoundError, open_management
from pipeline.ops.replicas import ClusterState, read_cluster, read_nodes
from pipeline.ops.retired import RetiredRung, find_retired_rungs
from pipeline.settings import PipelineSettings
from topology import Topology, naming


@dataclass(frozen=True)
class QueueState:
    """One queue as the broker reports it (rates in messages per second)."""

    name: str
    exists: bool = True
    ready: int = 0
    unacked: int = 0
    consumers: int = 0
    in_rate: float = 0.0  # published into the queue
    out_rate: float = 0.0  # delivered to consumers (or fetched)
    ack_rate: float = 0.0
    # AMQP timestamp of the oldest message (classic queues; the store's is peeked)
    head_timestamp: float | None = None
    # Quorum queues: messages dead-lettered at-least-once but not yet taken by
    # any target (for the last delay level: due, and routed nowhere).
    dlx: int = 0

    @property
    def messages(self) -> int:
        return self.ready + self.unacked

    @classmethod
    def from_api(cls, listed: dict[str, Any] | None, name: str) -> QueueState:
        if listed is None:
            return cls(name, exists=False)
        stats = listed.get("message_stats") or {}

        def rate(key: str) -> float:
            return float((stats.get(f"{key}_details") or {}).get("rate") or 0.0)

        # A quorum queue may report no numbers for its first few seconds.
        return cls(
            name,
            ready=int(listed.get("messages_ready") or 0),
            unacked=int(listed.get("messages_unacknowledged") or 0),
            consumers=int(listed.get("consumers") or 0),
            in_rate=rate("publish"),
            out_rate=rate("deliver_get"),
            ack_rate=rate("ack"),
            head_timestamp=listed.get("head_message_timestamp"),
            dlx=int(listed.get("messages_dlx") or 0),
        )


@dataclass(frozen=True)
class ConsumerStatus:
    name: str
    queue: QueueState
    rungs: tuple[tuple[str, QueueState], ...]  # (label, state), in ladder order
    paused: str | None = None  # who paused it and when (``pipeline consumers pause``)
    express: QueueState | None = None  # its express lane (None: the topology has none)
    tripped: str | None = None  # which replicas' circuit breakers are open, since when


@dataclass(frozen=True)
class Problem:
    code: str
    queue: str
    message: str


@dataclass(frozen=True)
class StatusReport:
    """A snapshot of every queue the topology declares, plus the problems found."""

    vhost: str
    consumers: tuple[ConsumerStatus, ...]
    notifier: QueueState
    parked: QueueState
    store: QueueState
    store_oldest_age_s: float | None
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    taken_at: float = field(default_factory=time.time)
    # The event ledger's queue (None when PIPELINE_LEDGER=false) and its lag:
    # seconds from a record's sending to its commit, in the last batch
    # (``pipeline.ledger.lag``; None when the ledger database cannot be read).
    ledger: QueueState | None = None
    ledger_lag_s: float | None = None
    ledger_note: str | None = None
    # Why the pause states are not shown (the control log could not be read).
    flow_note: str | None = None
    # The delay levels that exist (docs/scheduling.md), lowest first.
    delays: tuple[QueueState, ...] = ()
    # Leader and members of each replicated queue, and the cluster's nodes.
    cluster: ClusterState | None = None

    @property
    def delayed(self) -> int:
        """Delayed events waiting in the delay levels (due ones routed nowhere included)."""
        return sum(q.messages + q.dlx for q in self.delays)

    @property
    def is_ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.is_ok
        for consumer in data["consumers"]:
            consumer["rungs"] = [{"label": label, **state} for label, state in consumer["rungs"]]
        return data


async def read_status(
    settings: PipelineSettings,
    topology: Topology,
    max_stored: int = 0,
    paused: Mapping[str, str] | None = None,
    tripped: Mapping[str, str] | None = None,
) -> StatusReport:
    """Ask the management API about every queue in ``topology``.

    Raises ``BrokerUnreachableError`` when the API does not answer and
    ``ConfigurationError`` when the vhost does not exist.
    """
    async with open_management(settings) as api:
        try:
            listed = {q["name"]: q for q in await api.queues()}
        except ManagementNotFoundError:
            raise ConfigurationError(
                f"vhost {settings.vhost!r} does not exist on the broker; create it or fix "
                "PIPELINE_AMQP_URL, then run `pipeline topology apply`"
            ) from None
        nodes = await read_nodes(api)
        store = listed.get(naming.DEAD_LETTER_STORE)
        if store is not None and store.get("head_message_timestamp") is None:
            listed[naming.DEAD_LETTER_STORE] = {
                **store, "head_message_timestamp": await _peek_timestamp(api, store)}
    return build_report(settings.vhost, topology, listed, max_stored, paused=paused,
                        tripped=tripped, nodes=nodes)



async def _peek_timestamp(api: Any, store: Mapping[str, Any]) -> float | None:
    """The AMQP timestamp of the store's oldest message, read by peeking at its head.

    Only classic queues report ``head_message_timestamp``; the store is a
    quorum queue, so status takes its head message and requeues it (the
    management API's "get, requeue": a single message returns to the head).
    None when the store is empty, the message has no timestamp, or this
    user may not read the store.
    """
    if not int(store.get("messages_ready") or 0):
        return None
    path = f"/queues/{quote(str(store.get('vhost', api.vhost)), safe='')}/" \
           f"{quote(naming.DEAD_LETTER_STORE, safe='')}/get"
    try:
        response = await api.request("POST", path, json={
            "count": 1, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 1})
        taken = response.json()
    except (PipelineError, ValueError, AttributeError):
        return None
    if not taken:
        return None
    stamp = (taken[0].get("properties") or {}).get("timestamp")
    return float(stamp) if isinstance(stamp, int | float) else None


def _rung_label(name: str) -> str:
    """A rung's column label: its delay (``5s``), whatever the name's shape."""
    rung = naming.parse_retry_queue(name)
    return rung.label if rung else name.rsplit(".", 1)[-1]


def build_report(
    vhost: str,
    topology: Topology,
    listed: dict[str, dict[str, Any]],
    max_stored: int = 0,
    now: float | None = None,
    paused: Mapping[str, str] | None = None,
    tripped: Mapping[str, str] | None = None,
    nodes: list[dict[str, Any]] | None = None,
) -> StatusReport:
    """The report for the broker's queue listing ``listed`` (name -> API object).

    ``paused``: the paused consumers, each with who paused it and when.

    Each consumer's rungs are the ones ``topology`` declares for it: the
    deployment's ladder, or its own ``RetryPolicy``'s.
    """
    now = time.time() if now is None else now

    def state(name: str) -> QueueState:
        return QueueState.from_api(listed.get(name), name)

    consumers = tuple(
        ConsumerStatus(
            q.consumer,
            state(q.name),
            tuple((_rung_label(r.name), state(r.name))
                  for r in topology.queues_of(q.consumer) if r.role == "retry"),
            (paused or {}).get(q.consumer),
            next((state(e.name) for e in topology.queues_of(q.consumer) if e.role == "express"),
                 None),
            (tripped or {}).get(q.consumer),
        )
        for q in topology.queues
        if q.role == "consumer" and q.consumer is not None
    )
    store = state(naming.DEAD_LETTER_STORE)
    oldest = None if store.head_timestamp is None else max(0.0, now - store.head_timestamp)
    declared = {q.name for q in topology.queues}
    report = StatusReport(
        vhost, consumers, state(naming.ADMIN_NOTIFIER_QUEUE),
        state(naming.ADMIN_NOTIFIER_PARKED), store, oldest, taken_at=now,
        ledger=state(naming.LEDGER_QUEUE) if naming.LEDGER_QUEUE in declared else None,
        # Only those declared: a deployment that never applied them is not broken.
        delays=tuple(state(q.name) for q in topology.queues
                     if q.role == "delay" and q.name in listed),
    )
    cluster = read_cluster(topology, listed, nodes)
    problems = _problems(report, declared, max_stored) + tuple(
        Problem(code, where, message) for code, where, message in cluster.problems()
    ) + tuple(_retired(rung, now) for rung in find_retired_rungs(topology, listed.values()))
    return replace(report, problems=problems, cluster=cluster)


def _retired(rung: RetiredRung, now: float) -> Problem:
    """A rung the topology no longer declares (renamed or dropped from the ladder)."""
    home = naming.consumer_queue(rung.consumer)
    if not rung.drains:
        return Problem("retired-rung", rung.name, f"{rung.name} is no longer declared and "
                       f"holds {rung.messages} messages; {rung.action(now)}")
    if rung.messages == 0:
        return Problem("retired-rung", rung.name, f"{rung.name} is no longer declared and is "
                       "empty: `pipeline topology migrate` deletes it")
    due = time.strftime("%H:%M:%S UTC", time.gmtime(rung.empty_by(now) or now))
    return Problem("retired-rung", rung.name, f"{rung.messages} retries of {rung.consumer} wait "
                   f"in {rung.name}, which is no longer declared; they return to {home} by "
                   f"{due}, then `pipeline topology migrate` deletes it")


def _problems(report: StatusReport, declared: set[str], max_stored: int) -> tuple[Problem, ...]:
    found: list[Problem] = []
    every = [c.queue for c in report.consumers] + [s for c in report.consumers for _, s in c.rungs]
    every += [c.express for c in report.consumers if c.express is not None]
    every += [report.notifier, report.parked, report.store]
    missing = [q.name for q in every if q.name in declared and not q.exists]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(missing[:3]) + more
        found.append(Problem("missing-queue", ",".join(missing),
                             f"{shown} do not exist: run `pipeline topology apply`"))
    ledger = [(naming.LEDGER, report.ledger)] if report.ledger is not None else []
    for consumer in report.consumers:
        if consumer.paused is not None:
            found.append(Problem(
                "paused", consumer.queue.name,
                f"{consumer.name} is {consumer.paused}: {consumer.queue.ready} messages wait in "
                f"{consumer.queue.name}; `pipeline consumers resume {consumer.name}`",
            ))
    for consumer in report.consumers:
        if consumer.tripped is not None:
            found.append(Problem(
                "breaker-open", consumer.queue.name,
                f"{consumer.name}: {consumer.tripped}; its events wait in "
                f"{consumer.queue.name} until a probe succeeds (check what it calls)",
            ))
    running = [(c.name, q) for c in report.consumers if c.paused is None and c.tripped is None
               for q in (c.queue, c.express) if q is not None]
    for name, queue in [*running, (naming.ADMIN_NOTIFIER, report.notifier), *ledger]:
        if queue.exists and queue.ready > 0 and queue.consumers == 0:
            found.append(Problem(
                "no-consumer", queue.name,
                f"{queue.ready} messages wait in {queue.name} and no consumer is attached: "
                f"start `python -m consumers {name}`",
            ))
    last = next((q for q in report.delays if q.name.startswith(naming.delay_exchange(0) + ".")),
                None)
    if last is not None and last.dlx:
        found.append(Problem(
            "delayed-unroutable", last.name,
            f"{last.dlx} delayed events came due but no queue is bound for their routing key; "
            f"they wait in {last.name}: bind a consumer for them or purge it",
        ))
    store = report.store
    if store.exists and store.messages > max_stored:
        found.append(Problem(
            "dead-letters-stored", store.name,
            f"{store.messages} dead letters are stored (allowed: {max_stored}): "
            "see `pipeline dead-letters list`, then replay or purge them",
        ))
    if store.exists and store.in_rate > 0:
        found.append(Problem(
            "store-growing", store.name,
            f"events are being dead-lettered right now ({store.in_rate:.2f}/s)",
        ))
    if report.parked.exists and report.parked.messages > 0:
        found.append(Problem(
            "notices-parked", report.parked.name,
            f"{report.parked.messages} notices could not be delivered by the admin notifier: "
            "check its sink settings and logs",
        ))
    return tuple(found)
