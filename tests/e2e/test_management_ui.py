"""The RabbitMQ management UI shows every queue the topology declares, as declared.

The UI's queues page is a client of the management HTTP API: the test asks
the API exactly what the page asks (paginated, sorted by name) after
`pipeline topology apply` ran in the test's own vhost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from pipeline.app import load_app
from pipeline.settings import PipelineSettings
from tests.conftest import make_settings

pytestmark = pytest.mark.e2e

PIPELINE = str(Path(sys.executable).parent / "pipeline")


def apply_topology_with_the_cli(settings: PipelineSettings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
        PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value(),
        PIPELINE_RETRY_DELAYS=settings.retry_delays,
        PIPELINE_APP=settings.app or "",
    )
    done = subprocess.run([PIPELINE, "topology", "apply"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_queues_page_lists_every_declared_queue_with_its_arguments(broker, vhost):
    settings = make_settings(broker, vhost, retry_delays="1s,5s,30s,5m,30m")
    topology = load_app(settings.app).topology(settings.ladder, settings.delivery_limit)
    apply_topology_with_the_cli(settings)

    with broker.api() as api:
        index = api.get(str(api.base_url).removesuffix("/api/") + "/")
        page = api.get(
            f"/queues/{quote(vhost, safe='')}",
            params={"page": 1, "page_size": 100, "name": "", "use_regex": "false",
                    "pagination": "true", "sort": "name"},
        ).json()
        exchanges = {e["name"]: e for e in api.get(f"/exchanges/{quote(vhost, safe='')}").json()}

    assert index.status_code == 200
    assert "<title>RabbitMQ Management</title>" in index.text
    shown = {q["name"]: q for q in page["items"]}
    assert page["total_count"] == len(topology.queues)
    for spec in topology.queues:
        assert spec.name in shown, f"{spec.name} is not on the queues page"
        queue = shown[spec.name]
        assert queue["durable"] is True
        assert queue["type"] == spec.queue_type
        assert queue["arguments"] == dict(spec.arguments), spec.name
    for spec in topology.exchanges:
        assert exchanges[spec.name]["type"] == spec.type


def test_a_consumers_queue_sorts_next_to_its_retry_rungs_in_the_ui(broker, vhost):
    # The default ladder: its labels alone would sort 1s, 30m, 30s, 5m, 5s.
    settings = make_settings(broker, vhost, retry_delays="1s,5s,30s,5m,30m")
    topology = load_app(settings.app).topology(settings.ladder, settings.delivery_limit)
    apply_topology_with_the_cli(settings)

    with broker.api() as api:
        names = [q["name"] for q in api.get(
            f"/queues/{quote(vhost, safe='')}",
            params={"page": 1, "page_size": 100, "pagination": "true", "sort": "name"},
        ).json()["items"]]

    assert names == sorted(names)
    for consumer in {q.consumer for q in topology.queues if q.role == "consumer"}:
        own = [i for i, name in enumerate(names)
               if name in (f"pipeline.{consumer}", f"pipeline.{consumer}.express")
               or name.startswith(f"pipeline.{consumer}.retry.")]
        assert len(own) == 2 + len(settings.ladder)  # the queue, its express lane, the rungs
        assert own == list(range(own[0], own[0] + len(own))), f"{consumer}'s rungs are apart"
        assert names[own[0]] == f"pipeline.{consumer}"
        assert names[own[1]] == f"pipeline.{consumer}.express"
        # and the UI lists the rungs in ladder order (1s, 5s, 30s ..., not 1s, 30m, 30s ...)
        ladder = [q.name for q in topology.queues_of(consumer) if q.role == "retry"]
        assert [names[i] for i in own[2:]] == ladder
