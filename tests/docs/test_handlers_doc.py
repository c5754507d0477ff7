"""The examples in docs/handlers.md work as written (TestPipeline, memory://)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from pipeline import PipelineSettings
from pipeline.testing import State, TestPipeline

DOC = Path(__file__).parents[2] / "docs" / "handlers.md"


def load(name: str) -> ModuleType:
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/handlers.md has no example named {name}"
    module = ModuleType(f"handlers_doc_{name.replace('-', '_')}")
    exec(compile(match.group(1), f"{DOC}:{name}", "exec", dont_inherit=True), module.__dict__)
    return module


async def test_the_context_example_links_the_follow_up_to_its_cause():
    doc = load("context")
    async with TestPipeline(doc.app) as pipeline:
        event_id = await pipeline.publish(doc.OrderPlaced(order_id="1042", amount_cents=5))

    assert doc.log == [f"orders.order.placed {event_id} attempt 1",
                       f"receipt for 1042, caused by {event_id}"]


async def test_the_lifespan_example_opens_before_and_closes_after_the_handlers():
    doc = load("lifespan")
    async with TestPipeline(doc.app) as pipeline:
        await pipeline.publish(doc.OrderShipped(order_id="7"))
        carrier = doc.app.runtime.state.carrier
        assert carrier.is_open
        assert carrier.labels == ["7"]
    assert not carrier.is_open


async def test_the_middleware_example_sees_each_outcome():
    doc = load("middleware")
    async with TestPipeline(doc.app) as pipeline:
        await pipeline.publish_raw(b"not json", "misc.thing.happened")

    [(consumer, outcome, seconds)] = doc.timings
    assert (consumer, outcome) == ("audit", "dead-lettered")
    assert seconds > 0


async def test_the_retry_policy_example_dead_letters_a_declined_card_at_once():
    doc = load("retry-policy")
    async with TestPipeline(doc.app) as pipeline:
        event_id = await pipeline.publish(doc.PaymentRequested(order_id="9"))
        where = pipeline.where(event_id, "payments")

    assert where.state is State.DEAD_LETTERED
    assert where.reason == "permanent-error"
    assert where.attempts == 1


def test_the_retry_policy_example_declares_two_rungs_for_three_attempts():
    doc = load("retry-policy")
    topology = doc.app.topology(PipelineSettings().ladder, 20)

    rungs = [q.name for q in topology.queues_of("payments") if q.role == "retry"]

    assert rungs == ["pipeline.payments.retry.01.1s", "pipeline.payments.retry.02.10s"]
