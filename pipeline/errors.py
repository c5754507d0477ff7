"""Every error the pipeline raises, each saying what to do about it.

    PipelineError
    ├── ConfigurationError          a setting or registration cannot work
    ├── BrokerUnreachableError      the first connection failed after retries
    │   └── CredentialsRefusedError the broker refused the user name and password
    ├── TopologyError               the broker's objects differ from ours
    │   ├── TopologyMismatchError   declaring failed: an object exists with other arguments
    │   └── TopologyDriftError      a policy or argument on the broker undoes ours (check)
    ├── PublishError                an event was NOT confirmed by the broker
    │   ├── UnroutableError         no queue is bound for the routing key
    │   ├── PublishRejectedError    the broker nacked it (queue full, limit)
    │   ├── ConfirmTimeoutError     no confirm in time: it may or may not be stored
    │   ├── MessageTooLargeError    bigger than max_message_bytes; never sent
    │   ├── ReservedHeaderError     a caller set a pipeline-* or x-* header; never sent
    │   └── BatchPublishError       some events of a publish_many were not confirmed
    ├── InvalidMessageError         a body is not a valid CloudEvent / event model
    ├── LedgerError                 the event ledger cannot answer (docs/ledger.md)
    │   ├── LedgerUnavailableError  its database cannot be reached, or is locked
    │   ├── EventNotFoundError      no event with this id in the ledger (yet)
    │   └── AlreadyHandledError     a cancel came too late: its consumers handled it
    └── UnknownEventTypeError       no handler and no model for this event type

Handlers signal what should happen to a message by raising:

    HandlerError
    ├── TransientError              retry on the ladder (any other exception too)
    │   └── HandlerTimeout          raised for the handler past ``Consumer(timeout=...)``
    └── PermanentError              dead-letter at once; retrying cannot help

``pipeline.exits.exit_code_for`` maps each branch to a process exit code.
"""

from __future__ import annotations

from collections.abc import Sequence

from topology import TopologyMismatchError as _DeclareMismatch


class PipelineError(Exception):
    """Base of every error the pipeline raises."""


class ConfigurationError(PipelineError):
    """A setting or a registration cannot work; the message says which."""


class BrokerUnreachableError(PipelineError):
    """No connection to the broker after retrying for ``connect_timeout_s``."""


class CredentialsRefusedError(BrokerUnreachableError):
    """The broker (or its management API) refused the user name and password.

    Retrying cannot help; the console tells a user who logs in so.
    """


class TopologyError(PipelineError):
    """The broker's objects differ from the declared topology."""


class TopologyMismatchError(TopologyError, _DeclareMismatch):
    """Declaring failed: objects exist on the broker with other arguments (``mismatches``).

    ``topology`` raises its own ``TopologyMismatchError`` (it knows nothing of
    the pipeline); ``pipeline.declare`` re-raises it as this one.
    """


class TopologyDriftError(TopologyError):
    """Broker objects or policies differ from the declared topology in a dangerous way."""


class PublishError(PipelineError):
    """The event was not confirmed by the broker; the caller must decide what to do.

    ``event_id`` is the CloudEvents id ``Publisher.publish`` gave the event
    (None where no single event is meant): publish again with
    ``event_id=error.event_id`` so a consumer can drop the duplicate by id.
    """

    event_id: str | None = None


class UnroutableError(PublishError):
    """The broker returned the event: nothing is bound for its routing key."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(
            f"no queue is bound to exchange {exchange or '(default)'!r} for routing key "
            f"{routing_key!r}: the event was not stored. Run `pipeline topology apply` or "
            "register a consumer whose patterns match it"
        )


class PublishRejectedError(PublishError):
    """The broker nacked the event (a full queue with reject-publish, for example)."""


class ConfirmTimeoutError(PublishError):
    """No confirm arrived in time; the event may or may not be stored (retrying may duplicate)."""


class MessageTooLargeError(PublishError):
    """The encoded event is bigger than ``max_message_bytes``; it was not sent."""


class ReservedHeaderError(PublishError):
    """A caller passed a ``pipeline-*`` or ``x-*`` header; the event was not sent.

    Those headers belong to the pipeline's failure path and to the broker;
    put your own data in the event or in a header with another prefix.
    """


class BatchPublishError(PublishError):
    """Some events of a ``publish_many`` were not confirmed.

    ``failed`` maps each unconfirmed event id to its error; every id in
    ``confirmed`` is stored by the broker.
    """

    def __init__(self, confirmed: Sequence[str], failed: dict[str, PublishError]) -> None:
        self.confirmed = list(confirmed)
        self.failed = failed
        first = next(iter(failed.values()))
        super().__init__(
            f"{len(failed)} of {len(failed) + len(confirmed)} events were not confirmed "
            f"(first error: {first})"
        )


class InvalidMessageError(PipelineError):
    """A delivery is not a valid CloudEvent, or its data does not fit the event model."""


class UnknownEventTypeError(PipelineError):
    """The consumer has no handler for this event type."""


class HandlerError(Exception):
    """Base for the errors a handler raises to choose a message's fate."""


class TransientError(HandlerError):
    """Try again later: the message moves to the next rung of the retry ladder."""


class PermanentError(HandlerError):
    """Retrying cannot help: the message goes to the dead-letter store at once."""


class HandlerTimeout(TransientError):
    """The handler ran past its consumer's ``timeout`` and was cancelled: next rung."""


class LedgerError(PipelineError):
    """The event ledger cannot answer or act."""


class LedgerUnavailableError(LedgerError):
    """The ledger database cannot be reached, or is locked; the message says which."""


class EventNotFoundError(LedgerError):
    """No event with this id in the ledger (it may not have caught up yet)."""


class AlreadyHandledError(LedgerError):
    """A cancel came too late: every consumer it names has handled the event."""
