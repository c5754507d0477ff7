"""The queue count in docs/scaling.md is the one `App.topology` declares for the demo app."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.app import load_app
from pipeline.settings import PipelineSettings
from tests.apps.scheduled import app as scheduled_app

TIMES = "\N{MULTIPLICATION SIGN}"
DOC = Path(__file__).parents[2] / "docs" / "scaling.md"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> PipelineSettings:
    for key in [k for k in os.environ if k.startswith("PIPELINE_")]:
        monkeypatch.delenv(key)
    return PipelineSettings()  # the defaults the doc speaks of


def _table() -> dict[str, str]:
    text = DOC.read_text()
    match = re.search(r"<!-- queue-count -->\n(.*?)<!-- /queue-count -->", text, re.S)
    assert match, "docs/scaling.md lost its queue-count table"
    rows = [line.strip("|").split("|") for line in match.group(1).splitlines()[2:]]
    return {what.strip(): count.strip() for what, count in rows}


def test_the_documented_queue_count_is_what_the_demo_app_declares(settings):
    topology = load_app("consumers.registry:app").topology(
        settings.ladder, settings.delivery_limit, settings.ledger, settings.queue_replicas)
    roles = Counter(q.role for q in topology.queues)
    consumers = sorted(q.consumer for q in topology.queues if q.role == "consumer")
    per_consumer = {c: sum(1 for q in topology.queues if q.consumer == c) for c in consumers}
    [each] = set(per_consumer.values())
    rungs = len(settings.ladder.rungs)
    assert each == 1 + 1 + rungs
    shared = len(topology.queues) - each * len(consumers)
    types = Counter(q.queue_type for q in topology.queues)

    assert _table() == {
        f"per consumer ({', '.join(consumers)}): its queue, express lane, {rungs} rungs":
            f"{len(consumers)} {TIMES} {each} = {each * len(consumers)}",
        "dead-letter store, admin notifier's queue, its parked queue":
            str(roles["dead-letter-store"] + roles["notifier"] + roles["parked"]),
        "delay levels (`pipeline.delay.NN.*`, delayed publishing)": str(roles["delay"]),
        "ledger queue and its parked queue": str(roles["ledger"]),
        "control log (a stream)": str(roles["control"]),
        "total": f"{len(topology.queues)} ({types['quorum']} quorum queues, "
                 f"{types['stream']} stream)",
    }
    assert set(roles) == {"consumer", "express", "retry", "dead-letter-store", "notifier",
                          "parked", "delay", "ledger", "control"}  # nothing left uncounted
    assert f"declare {each} {TIMES} N + {shared} queues" in " ".join(DOC.read_text().split())


def test_an_app_with_schedules_declares_one_queue_more(settings):
    with_schedules = scheduled_app.topology(settings.ladder, settings.delivery_limit,
                                            settings.ledger, settings.queue_replicas)
    roles = Counter(q.role for q in with_schedules.queues)

    assert roles["scheduler"] == 1
    assert "An App with schedules adds one more, the scheduler's leader queue" in (
        " ".join(DOC.read_text().split()))
