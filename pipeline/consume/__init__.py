"""The consume side: events in, handled, and every delivery settled exactly once.

One word per idea:

    Consumer     what a user declares: a name, binding patterns, a prefetch and
                 typed handlers (consumer.py). Declaring does no I/O.
    WorkerPlan   how one queue's worker is wired: processor, failure policy,
                 middlewares, metrics (plan.py). ``plan_for(consumer)`` builds a
                 consumer's; an App's ``workers`` build the others' (the notifier).
    Worker       the loop that consumes one queue and settles each delivery
                 (worker.py).
    run_worker   one worker as a process: connect, declare, consume, drain on a
                 signal, exit with a documented code (process.py); ``run_named``
                 finds the plan by name (``python -m consumers NAME``).

The rest, by the order a delivery meets them: delivery.py (one delivery and
its outcome), middleware.py (the onion), metrics_middleware.py and
tracing_middleware.py, dispatch.py (bytes -> envelope -> model -> handler),
failure.py (THE failure policy: the only owner of retry vs dead-letter).
The interfaces to plug in are in protocols.py.
"""

from pipeline.consume.consumer import Consumer
from pipeline.consume.delivery import Delivery, Outcome
from pipeline.consume.protocols import ConsumeMiddleware, FailurePolicy, Processor

__all__ = ["ConsumeMiddleware", "Consumer", "Delivery", "FailurePolicy", "Outcome", "Processor"]
