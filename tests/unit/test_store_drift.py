"""A policy's delivery limit on the dead-letter store: harmless down to 20, dangerous below.

The store declares a limit no listing reaches (4.0-4.2 count returns toward
it); a policy keeping 4.x's default of 20 changes nothing, a lower one could
drop dead letters after a few interrupted or read-only listings.
"""

from __future__ import annotations

import pytest

from pipeline import App, Consumer
from pipeline.ops.drift import queue_policy_drift
from topology import RetryLadder, naming


@pytest.mark.parametrize(("limit", "dangerous"), [(500, False), (20, False), (5, True)])
def test_a_policy_limit_on_the_store_is_dangerous_only_below_twenty(limit, dangerous):
    topology = App([Consumer("billing", ["orders.#"])]).topology(RetryLadder.parse("1s"), 20)
    store = topology.queue(naming.DEAD_LETTER_STORE)
    policy = {"kind": "policy", "name": "p", "pattern": ".*", "apply-to": "queues",
              "priority": 0, "definition": {"delivery-limit": limit}}
    [drift] = queue_policy_drift(store, [policy])
    assert drift.dangerous is dangerous
