"""Drift: policies and arguments on the broker that differ from the declared topology."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import pytest

from pipeline.consume.plan import plan_for
from pipeline.consume.process import StopSignal, run_worker
from pipeline.exits import ExitCode
from pipeline.ops.drift import find_drift
from tests.apps.crashy import app
from tests.conftest import make_settings
from tests.support.runtime import running
from tests.support.store import cli_env, run_cli
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.integration

APP = "tests.apps.crashy:app"


@pytest.fixture
async def applied(settings, connection):
    topology = app.topology(settings.ladder, settings.delivery_limit)
    await apply_topology(connection, topology)
    return topology


def put_policy(broker, vhost: str, name: str, pattern: str, definition: dict,
               kind: str = "policies") -> None:
    with broker.api() as api:
        api.put(
            f"/{kind}/{quote(vhost, safe='')}/{name}",
            json={"pattern": pattern, "definition": definition, "apply-to": "queues",
                  "priority": 5},
        ).raise_for_status()


async def test_check_finds_no_drift_right_after_apply(settings, applied, monkeypatch, capsys):
    assert await find_drift(settings, applied) == []
    for name, value in {**cli_env(settings), "PIPELINE_APP": APP}.items():
        monkeypatch.setenv(name, value)
    assert await run_cli(["topology", "check"]) == 0
    assert "no drift" in capsys.readouterr().out


async def test_check_and_consumers_catch_a_policy_that_lowers_the_delivery_limit(
    broker, vhost, settings, applied, monkeypatch, capsys
):
    # Given an ops policy that lowers our consumer queue's delivery limit
    # and an operator policy that caps the store's length
    put_policy(broker, vhost, "tight-limit", r"^pipeline\.crashy$", {"delivery-limit": 2})
    put_policy(broker, vhost, "cap", r"^pipeline\.dead-letter\.store$", {"max-length": 100},
               kind="operator-policies")

    drifts = await find_drift(settings, applied)

    found = {(d.name, d.setting, d.source, d.on_broker, d.declared, d.dangerous) for d in drifts}
    assert found == {
        ("pipeline.crashy", "delivery-limit", "policy tight-limit", 2, 20, True),
        ("pipeline.dead-letter.store", "max-length", "operator-policy cap", 100, None, True),
    }
    # the CLI prints it and exits 6
    for name, value in {**cli_env(settings), "PIPELINE_APP": APP}.items():
        monkeypatch.setenv(name, value)
    assert await run_cli(["topology", "check", "--json"]) == ExitCode.TOPOLOGY
    assert "tight-limit" in capsys.readouterr().out
    # and a consumer refuses to start, saying what to fix: it reads the policy from
    # its queue's own object, which shows it once the broker's statistics caught up
    await eventually(lambda: policy_shown(broker, vhost, "pipeline.crashy", "tight-limit"),
                     timeout=20, interval=0.5)
    code = await run_worker(settings, plan_for(app.consumer("crashy"), settings), applied,
                            StopSignal())
    assert code == ExitCode.TOPOLOGY


async def test_harmless_policies_do_not_stop_consumers(broker, vhost, settings, applied):
    # A higher limit loses to our lower argument; an undeclared routing key
    # on a fanout dead-letter exchange reroutes nothing.
    put_policy(broker, vhost, "roomy", r"^pipeline\.", {"delivery-limit": 500,
                                                        "dead-letter-routing-key": "x"})
    drifts = await find_drift(settings, applied)
    assert drifts
    assert not [d for d in drifts if d.dangerous]
    async with running(settings, app, app.consumer("crashy")):
        pass


async def test_check_reports_a_queue_declared_with_other_arguments(settings, connection):
    channel = await connection.channel()
    await channel.declare_queue("pipeline.crashy", durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 5})
    topology = app.topology(settings.ladder, settings.delivery_limit)

    drifts = await find_drift(settings, topology)

    crashy = {d.setting: d for d in drifts if d.name == "pipeline.crashy"}
    assert crashy["x-delivery-limit"].on_broker == 5
    assert crashy["x-delivery-limit"].declared == 20
    assert crashy["x-dead-letter-exchange"].on_broker is None
    assert crashy["x-dead-letter-exchange"].dangerous
    assert {d.source for d in drifts if d.name != "pipeline.crashy"} == {"missing"}


async def policy_shown(broker, vhost: str, queue: str, policy: str) -> None:
    with broker.api() as api:
        shown = api.get(f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}").json()
    assert shown.get("policy") == policy, shown.get("policy")


async def test_a_consumer_whose_drift_check_cannot_run_refuses_to_start_unless_told_to_warn(
    broker, vhost, caplog
):
    # Given a management API that does not answer
    caplog.set_level(logging.WARNING)
    settings = make_settings(broker, vhost, management_url="http://guest:guest@127.0.0.1:9/")
    topology = app.topology(settings.ladder, settings.delivery_limit).subset("crashy")
    plan = plan_for(app.consumer("crashy"), settings)
    # When the consumer starts, it refuses (exit 4) with one line naming the setting
    code = await asyncio.wait_for(run_worker(settings, plan, topology, StopSignal()), 30)
    assert code == ExitCode.TOPOLOGY
    refusals = [r.getMessage() for r in caplog.records if "refusing to start" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert "cannot check the broker's policies for drift" in refusals[0]
    assert "PIPELINE_DRIFT_CHECK=warn" in refusals[0]
    assert "guest:guest" not in caplog.text
    # ...and with PIPELINE_DRIFT_CHECK=warn it starts, with a warning
    caplog.clear()
    warned = settings.model_copy(update={"drift_check": "warn"})
    async with running(warned, app, app.consumer("crashy")):
        pass
    assert "could not check broker policies for drift" in caplog.text
    assert "PIPELINE_DRIFT_CHECK=warn" in caplog.text
    assert "guest:guest" not in caplog.text
