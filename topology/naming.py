"""The only place broker object names are built.

Every exchange and queue name the pipeline uses comes from here, so the
management UI, the docs and the code always agree. Names are lowercase,
dot-separated and prefixed ``pipeline.``; a consumer's queue sorts next to
its retry rungs (``pipeline.billing``, ``pipeline.billing.retry.01.1s`` ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "pipeline"

EVENTS_EXCHANGE = f"{PREFIX}.events"
# Express events (``publish(..., priority="express")``) go through their own
# exchange, bound like the events exchange, to each consumer's express queue.
EXPRESS_EXCHANGE = f"{PREFIX}.events.express"
DEAD_LETTER_EXCHANGE = f"{PREFIX}.dead-letter"
DEAD_LETTER_STORE = f"{PREFIX}.dead-letter.store"
ADMIN_NOTIFIER = "admin-notifier"
ADMIN_NOTIFIER_QUEUE = f"{PREFIX}.{ADMIN_NOTIFIER}"
ADMIN_NOTIFIER_PARKED = f"{ADMIN_NOTIFIER_QUEUE}.parked"

# Consumer names become queue names and must read well in the UI and in a
# shell, so keep them to lowercase words joined by dashes.
_CONSUMER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def validate_consumer_name(name: str) -> str:
    """Return ``name`` unchanged, or raise ``ValueError`` saying what is allowed."""
    if not _CONSUMER_NAME.match(name):
        raise ValueError(
            f"consumer name {name!r} is not allowed: use lowercase letters, digits "
            "and dashes, starting with a letter (for example 'billing')"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"consumer name {name!r} is reserved by the pipeline")
    return name


def consumer_queue(consumer: str) -> str:
    """The durable queue a consumer owns: ``pipeline.<consumer>``."""
    return f"{PREFIX}.{consumer}"


def express_queue(consumer: str) -> str:
    """A consumer's express lane: ``pipeline.<consumer>.express`` (docs/flow-control.md)."""
    return f"{PREFIX}.{consumer}.express"


def retry_queue(consumer: str, position: int, rung_label: str) -> str:
    """A consumer's retry rung: ``pipeline.<consumer>.retry.<position>.<label>``.

    ``position`` is the rung's place in the consumer's ladder (1 for the
    first), two digits so the management UI, which sorts by name, lists the
    rungs in ladder order (``01.1s, 02.5s, 03.30s, 04.5m, 05.30m``; plain
    labels sort to ``1s, 30m, 30s, 5m, 5s``). The delay is part of the name
    so that changing the ladder declares new queues instead of colliding
    with existing ones (PRECONDITION_FAILED).
    """
    if not 1 <= position <= 99:
        raise ValueError(f"rung position {position} is out of range: a ladder has 1 to 99 rungs")
    return f"{retry_prefix(consumer)}{position:02d}.{rung_label}"


def retry_prefix(consumer: str) -> str:
    """What every rung name of ``consumer`` starts with, old-named rungs included."""
    return f"{PREFIX}.{consumer}.retry."


# A rung name as built above, and as earlier versions built it
# (``pipeline.<consumer>.retry.<label>``, without the position): docs/retries.md,
# "Rung names", says how ``pipeline topology migrate`` retires those.
_RUNG = re.compile(rf"^{PREFIX}\.([a-z][a-z0-9-]*)\.retry\.(?:(\d{{2}})\.)?(\d+(?:ms|s|m|h))$")


@dataclass(frozen=True)
class RungName:
    """A rung name read back: its consumer, position (None: an old-named rung) and label."""

    consumer: str
    position: int | None
    label: str


def parse_retry_queue(queue: str) -> RungName | None:
    """Read a rung name (new or old shape); None if ``queue`` is not a rung."""
    match = _RUNG.match(queue)
    if match is None:
        return None
    consumer, position, label = match.groups()
    return RungName(consumer, None if position is None else int(position), label)


def old_rung_pattern(consumer: str) -> str:
    """A regular expression for ``consumer``'s rungs as earlier versions named them.

    The deployer may delete those (``pipeline topology migrate``); RabbitMQ
    permissions are regular expressions (rabbitmq.com/docs/access-control).
    """
    return re.escape(retry_prefix(consumer)) + r"[0-9]+(ms|s|m|h)"


def consumer_of_queue(queue: str) -> str | None:
    """The consumer name behind a consumer queue or rung name, if it is one of ours."""
    if not queue.startswith(PREFIX + "."):
        return None
    rest = queue[len(PREFIX) + 1 :]
    name = rest.split(".retry.", 1)[0]
    if name.startswith("dead-letter") or "." in name or name == DELAY:
        return None
    return name


# The event status ledger (docs/ledger.md). Its queue has a dot after
# ``ledger`` so it can never be mistaken for a consumer's ``pipeline.<consumer>``.
LEDGER = "ledger"
LEDGER_EXCHANGE = f"{PREFIX}.ledger"  # workers' outcome records, in batches
LEDGER_QUEUE = f"{PREFIX}.ledger.events"  # events as published + records + dead letters
LEDGER_PARKED = f"{PREFIX}.ledger.parked"  # records the ledger cannot read
# The control plane's command log (a stream every worker reads from its start).
CONTROL = "control"
CONTROL_LOG = f"{PREFIX}.control.log"

# Delayed delivery (docs/scheduling.md): an entrance exchange, then one
# headers exchange and one TTL queue per delay level. Levels sort in order in
# the UI (two digits) and the queue name says how long its messages wait.
DELAY = "delay"
DELAY_EXCHANGE = f"{PREFIX}.delay"


def delay_exchange(level: int) -> str:
    """The headers exchange in front of delay level ``level``: ``pipeline.delay.07``."""
    return f"{DELAY_EXCHANGE}.{level:02d}"


def delay_queue(level: int, label: str) -> str:
    """Delay level ``level``'s queue, with its wait: ``pipeline.delay.07.8s``."""
    return f"{DELAY_EXCHANGE}.{level:02d}.{label}"


def delay_header(level: int) -> str:
    """The header a delayed event carries for level ``level`` (``"1"``: wait there)."""
    return f"{PREFIX}-delay-{level:02d}"


# The scheduler's leadership queue (single active consumer) and its command
# name; ``pipeline.scheduler`` is reserved for it below.
SCHEDULER = "scheduler"
SCHEDULER_LEADER = f"{PREFIX}.scheduler.leader"

# Names a consumer may not take: their queues belong to the pipeline itself.
# ("ledger" and "control" stay allowed: the ledger's and the control plane's
# queues have a second word, so ``pipeline.ledger`` cannot collide with them.)
RESERVED_NAMES = frozenset({"events", "dead-letter", "delay", "scheduler"})


def migration_queue(queue: str) -> str:
    """Where ``pipeline topology migrate`` holds a queue's messages while it is redeclared."""
    return f"{queue}.migrating"
