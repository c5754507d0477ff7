"""The event status ledger: where is event X, what happened to it (docs/ledger.md).

    model.py     EventStatus, ConsumerStatus, Attempt, State: what the ledger answers
    api.py       Ledger: ``await ledger.status(event_id)`` for services
    recorder.py  the worker side: outcome records, batched off the critical path
    worker.py    the ledger process (``python -m consumers ledger``)
    intake.py    messages of pipeline.ledger.events -> facts
    facts.py     the facts and their clocks; state.py applies them (convergence rules)
    record.py    the wire format of workers' record batches
    identity.py  the key an event is recorded under
    routing.py   which consumers an event is expected at
    schema.py    tables and the engine for PIPELINE_LEDGER_URL (SQLite, PostgreSQL)
    store.py     batched writes; query.py reads; writer.py batches and rides out outages
    metrics.py   the ledger's Prometheus metrics

Only the model is imported here: a service that publishes never loads SQLAlchemy.
"""

from pipeline.ledger.model import Attempt, ConsumerStatus, DeadLetterView, EventStatus, State

__all__ = ["Attempt", "ConsumerStatus", "DeadLetterView", "EventStatus", "State"]
