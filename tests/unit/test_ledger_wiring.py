"""Where the ledger plugs in: the topology, the worker plan, PIPELINE_LEDGER=false."""

from __future__ import annotations

from pipeline import App, Consumer, PipelineSettings
from pipeline.consume.plan import plan_for
from pipeline.control.cancel import CancelGuard
from pipeline.control.log import ControlLog
from pipeline.ledger.recorder import LedgerRecorder
from tests.support.events import ThingHappened
from topology import RetryLadder, naming


def billing() -> Consumer:
    consumer = Consumer("billing", ["things.#", "orders.order.*"])

    @consumer.handler
    async def handle(event: ThingHappened) -> None:
        return None

    return consumer


def test_the_ledger_queue_mirrors_the_consumers_patterns_so_unroutable_stays_unroutable():
    topology = App([billing()]).topology(RetryLadder.parse("1s"), 20)

    ledger_patterns = {b.pattern for b in topology.bindings
                       if b.queue == naming.LEDGER_QUEUE and b.exchange == naming.EVENTS_EXCHANGE}
    assert ledger_patterns == {"things.#", "orders.order.*"}  # never "#"
    queue = topology.queue(naming.LEDGER_QUEUE)
    assert queue.arguments["x-single-active-consumer"] is True
    assert topology.queue(naming.CONTROL_LOG).queue_type == "stream"
    # A consumer declares the shared ledger queue and control log on start, too.
    assert {q.name for q in topology.subset("billing").queues} >= {
        naming.LEDGER_QUEUE, naming.CONTROL_LOG}


def test_with_the_ledger_off_there_is_no_ledger_queue_and_no_recorder():
    settings = PipelineSettings(ledger=False)
    topology = App([billing()]).topology(RetryLadder.parse("1s"), 20, ledger=settings.ledger)
    plan = plan_for(billing(), settings)

    assert naming.LEDGER_QUEUE not in {q.name for q in topology.queues}
    assert not any(isinstance(m, LedgerRecorder) for m in plan.middlewares)
    assert any(isinstance(m, CancelGuard) for m in plan.middlewares)  # cancel still works
    assert [type(s) for s in plan.services] == [ControlLog]


def test_with_the_ledger_on_the_recorder_sits_outside_the_cancel_guard():
    plan = plan_for(billing(), PipelineSettings())

    kinds = [type(m) for m in plan.middlewares]
    assert kinds.index(LedgerRecorder) < kinds.index(CancelGuard)  # it sees cancellations
    assert [type(s) for s in plan.services] == [ControlLog, LedgerRecorder]
