"""Least privilege: one broker user per role, with permissions derived from the topology.

RabbitMQ grants three regular expressions per user and vhost: *configure*
(declare, delete), *write* (publish to an exchange, bind a queue) and *read*
(consume or get from a queue, bind from an exchange); see
https://www.rabbitmq.com/docs/access-control. What each role needs:

    publisher   write pipeline.events and pipeline.delay (delayed events);
                nothing else (it declares nothing)
    <consumer>  read on its own queue and express lane only, write on the
                dead-letter exchange and on ``amq.default`` (retry copies go
                to a rung by queue name); read on the control log, write on
                ``pipeline.ledger`` (records); configure nothing: its worker
                verifies the topology passively
    deployer    configure every object of the topology, and what declaring
                and binding them needs (``pipeline topology apply``)
    scheduler   (an App with schedules) its leader queue, declaring the delay
                levels, write pipeline.events and ``amq.default`` (its tokens)
    operator    read the dead-letter store and the parked notices, write
                ``amq.default`` (replay republishes to the failed consumer's
                queue by name); the ``management`` tag for ``pipeline status``

Two broker rules shape this. The default exchange is named ``amq.default``
in permission checks, and write on it lets a user publish to *any* queue of
the vhost by name: the broker cannot narrow it per queue. And declaring a
queue with ``x-dead-letter-exchange`` needs read on that queue and write on
the dead-letter exchange, which is why declaring is the deployer's job: a
consumer that declared the shared notifier queue could also read it
(docs/reliability.md, "Security").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from pipeline.errors import ConfigurationError
from pipeline.ops.management import ManagementClient, is_loopback
from pipeline.settings import PipelineSettings
from topology import Topology, naming

DEFAULT_EXCHANGE = "amq.default"  # the default exchange's name in permission checks
PUBLISHER = "publisher"
OPERATOR = "operator"
DEPLOYER = "deployer"


@dataclass(frozen=True)
class Permission:
    """The three RabbitMQ permission patterns of one user on one vhost."""

    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class Role:
    """A broker user for one role: its name, management tags and permissions."""

    role: str  # "publisher", "operator" or a worker name ("billing")
    user: str
    tags: str
    permission: Permission
    purpose: str


def exactly(names: Iterable[str], patterns: Iterable[str] = ()) -> str:
    """A permission pattern matching exactly these names, and ``patterns`` (regular
    expressions) whole; ``^$`` matches none."""
    unique = [re.escape(name) for name in sorted(set(names))] + list(patterns)
    if not unique:
        return "^$"
    return "^(" + "|".join(unique) + ")$"


def worker_permission(subset: Topology, consumed: Iterable[str]) -> Permission:
    """What a worker needs to consume ``consumed`` and send its copies; it declares nothing.

    The deployer applies the topology (``deployer_permission``); a worker
    started with this user verifies its objects passively (no configure
    needed), so it cannot delete or redeclare the store, the exchanges or
    another consumer's queues.
    """
    read = list(consumed)
    # Its express lane, consumed beside its queue with the same handlers.
    owners = {q.consumer for q in subset.queues if q.name in read}
    read += [q.name for q in subset.queues if q.role == "express" and q.consumer in owners]
    # Rung copies go by queue name through amq.default; dead letters to the DLX.
    write = [DEFAULT_EXCHANGE, naming.DEAD_LETTER_EXCHANGE]
    # Every worker reads the control log and appends its start marker to it
    # (through amq.default); event consumers send outcome records to the ledger.
    read += [q.name for q in subset.queues if q.role == "control"]
    write += [e.name for e in subset.exchanges if e.name == naming.LEDGER_EXCHANGE]
    return Permission("^$", exactly(write), exactly(read))


def deployer_permission(topology: Topology) -> Permission:
    """What `pipeline topology apply` needs to declare and bind all of ``topology``.

    Also configure on each consumer's old-named rungs, which `pipeline
    topology migrate` deletes once they are empty (docs/retries.md, "Rung names").
    """
    configure = [e.name for e in topology.exchanges] + [q.name for q in topology.queues]
    with_rungs = sorted({q.consumer for q in topology.queues if q.role == "retry" and q.consumer})
    write: list[str] = []
    read: list[str] = []
    for binding in topology.bindings:
        write.append(binding.queue)  # queue.bind: write on the queue (or exchange)...
        read.append(binding.exchange)  # ...and read on the source exchange
    for queue in topology.queues:
        dead_letter_exchange = queue.arguments.get("x-dead-letter-exchange")
        if isinstance(dead_letter_exchange, str):
            # Declaring a queue that dead-letters needs read on it and write on its DLX
            # (measured on 3.10: ACCESS_REFUSED without either).
            read.append(queue.name)
            write.append(dead_letter_exchange or DEFAULT_EXCHANGE)
    old_rungs = [naming.old_rung_pattern(consumer) for consumer in with_rungs]
    return Permission(exactly(configure, old_rungs), exactly(write), exactly(read))


def scheduler_permission(topology: Topology) -> Permission:
    """What ``pipeline scheduler`` needs: its leader queue, the delay levels, publishing events.

    It declares the delay levels (their last one dead-letters into
    pipeline.events: write there), holds tokens on its leader queue (read),
    publishes tokens through ``amq.default`` and ticks to pipeline.events.
    """
    delay = [q for q in topology.queues if q.role == "delay"]
    exchanges = [e.name for e in topology.exchanges
                 if e.name.startswith(naming.DELAY_EXCHANGE) or e.name == naming.EVENTS_EXCHANGE]
    names = {q.name for q in delay} | set(exchanges)
    bindings = [b for b in topology.bindings if b.exchange in names and b.queue in names]
    configure = [*exchanges, *(q.name for q in delay), naming.SCHEDULER_LEADER]
    write = [DEFAULT_EXCHANGE, naming.EVENTS_EXCHANGE, *(b.queue for b in bindings)]
    write += [str(q.arguments["x-dead-letter-exchange"]) for q in delay]
    read = [naming.SCHEDULER_LEADER, *(b.exchange for b in bindings), *(q.name for q in delay)]
    return Permission(exactly(configure), exactly(write), exactly(read))


def roles_for(topology: Topology, workers: Mapping[str, str], prefix: str = "pipeline",
              scheduler: bool = False) -> list[Role]:
    """The publisher, one user per worker (name -> queue it consumes), and the operator.

    ``scheduler``: also a user for ``pipeline scheduler`` (the App has schedules).
    """
    roles = [Role(
        PUBLISHER, f"{prefix}-{PUBLISHER}", "",
        Permission("^$", exactly([naming.EVENTS_EXCHANGE, naming.EXPRESS_EXCHANGE,
                                  naming.DELAY_EXCHANGE]), "^$"),
        f"publishes events to {naming.EVENTS_EXCHANGE} (express: {naming.EXPRESS_EXCHANGE}, "
        f"delayed: {naming.DELAY_EXCHANGE})",
    )]
    for worker, queue in sorted(workers.items()):
        roles.append(Role(
            worker, f"{prefix}-{worker}", "management",
            worker_permission(topology.subset(worker), [queue]),
            f"consumes {queue} and republishes its failures",
        ))
    if scheduler:
        roles.append(Role(
            naming.SCHEDULER, f"{prefix}-{naming.SCHEDULER}", "",
            scheduler_permission(topology),
            "runs the schedules (pipeline scheduler) and declares the delay levels",
        ))
    roles.append(Role(
        DEPLOYER, f"{prefix}-{DEPLOYER}", "management",
        deployer_permission(topology),
        "applies the topology (`pipeline topology apply`, `topology check`); consumes nothing",
    ))
    roles.append(Role(
        OPERATOR, f"{prefix}-{OPERATOR}", "management",
        # The control log: `pipeline consumers list|pause|resume`, and the pause and
        # breaker states in `status` and the console (it appends through amq.default).
        Permission("^$", exactly([DEFAULT_EXCHANGE]),
                   exactly([naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_PARKED,
                            naming.CONTROL_LOG])),
        "lists and replays dead letters, reads status, pauses and resumes consumers",
    ))
    return roles


def missing_passwords(roles: Iterable[Role], passwords: Mapping[str, SecretStr]) -> list[str]:
    return [role.role for role in roles if not passwords.get(role.role)]


class AccessAdmin(ManagementClient):
    """Creates users and sets permissions through the management HTTP API.

    ``allow_plain_http`` lifts the refusal to send passwords over http to a
    host that is not loopback (a private network, as docker compose's).
    """

    def __init__(self, settings: PipelineSettings, ca_file: Path | None = None,
                 allow_plain_http: bool = False) -> None:
        super().__init__(settings, ca_file=ca_file)
        self._allow_plain_http = allow_plain_http

    async def apply(self, roles: Iterable[Role], passwords: Mapping[str, SecretStr]) -> None:
        """Create or update each role's user and permissions on our vhost.

        Raises ``ConfigurationError`` when a password is missing or the
        management user may not manage users, ``BrokerUnreachableError``
        when the API cannot be reached or refuses its credentials.
        """
        roles = list(roles)
        self._refuse_plain_http()
        missing = missing_passwords(roles, passwords)
        if missing:
            raise ConfigurationError(
                "no password for " + ", ".join(missing) + ": put them in "
                "PIPELINE_USER_PASSWORDS as JSON ({\"role\": \"password\"}) or in --passwords-file"
            )
        for role in roles:
            user = quote(role.user, safe="")
            await self._put(f"/users/{user}", {
                "password": passwords[role.role].get_secret_value(), "tags": role.tags,
            })
            await self._put(f"/permissions/{quote(self.vhost, safe='')}/{user}", {
                "configure": role.permission.configure, "write": role.permission.write,
                "read": role.permission.read,
            })

    def _refuse_plain_http(self) -> None:
        """Passwords go over https, or over http to this machine only (loopback)."""
        if self._allow_plain_http:
            return
        exposed = [url for url in self.node_urls
                   if urlsplit(url).scheme == "http" and not is_loopback(urlsplit(url).hostname)]
        if exposed:
            raise ConfigurationError(
                "refusing to send passwords over plain http to " + ", ".join(exposed)
                + ": use an https:// PIPELINE_MANAGEMENT_URL (--ca-file CA.pem for a private "
                "CA), or run `pipeline users apply` on the broker's host against 127.0.0.1"
            )

    async def _put(self, path: str, body: dict[str, str]) -> None:
        await self.request("PUT", path, json=body)
