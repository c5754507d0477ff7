"""The console on the real broker: log in as a broker user, see failed groups, act, audit."""

from __future__ import annotations

import logging
import re

import pytest

from pipeline.control.pause import read_pauses
from tests.console.conftest import logged_in
from tests.support.console import broker_user
from tests.support.runtime import queue_state
from tests.support.store import fill_store
from topology import naming

pytestmark = pytest.mark.integration

STORE = "pipeline.dead-letter.store"
ALPHA_PERMANENT = {"consumer": "alpha", "type": "things.thing.happened", "error": "PermanentError"}


async def stored(settings) -> int:
    return (await queue_state(settings, STORE))[0]


async def test_a_wrong_password_is_refused_by_the_broker_and_gets_no_session(console, operator):
    user, _ = operator
    async with console.client() as client:
        response = await console.log_in(client, user, "not-the-password")
        assert response.status_code == 401
        assert "refused this user name and password" in response.text
        assert "pipeline_console_session" not in response.headers.get("set-cookie", "")
        assert (await client.get("/failed")).status_code == 303  # back to the login page


async def test_operator_sees_groups_replays_one_group_and_the_audit_says_so(
        console, operator, store_settings, caplog):
    caplog.set_level(logging.DEBUG)
    await fill_store(store_settings, things=4, others=2)
    user, password = operator
    async with logged_in(console, user, password) as client:
        # Given three groups: alpha's two errors and beta's card expiry
        failed = (await client.get("/failed")).text
        assert "6 event(s) in the dead-letter store, in 3 group(s)" in failed
        for error in ("PermanentError", "TransientError", "CardExpiredError"):
            assert error in failed
        group = (await client.get("/failed/group", params=ALPHA_PERMANENT)).text
        assert "2 stored event(s)" in group
        # When the operator previews, then confirms, a replay of one group
        preview = await console.act(client, "/actions/replay", scope="group", **ALPHA_PERMANENT)
        assert 'id="dry-run-count">2<' in preview.text
        done = await console.finished(client, await console.act(
            client, "/actions/replay", scope="group", step="confirm", rate="50",
            **ALPHA_PERMANENT))
        # Then exactly that group left the store (the handlers fail it again later:
        # it was replayed to alpha's queue, which no worker consumes here)
        assert "replayed 2 event(s)" in done
        assert await stored(store_settings) == 4
        assert (await queue_state(store_settings, "pipeline.alpha"))[0] == 2
        audit = (await client.get("/audit")).text
        assert user in audit
        assert "replay" in audit
        assert "group alpha / things.thing.happened" in audit
        assert password not in audit
    assert password not in caplog.text


async def test_read_only_user_sees_the_failures_but_the_broker_refuses_its_replay_and_purge(
        console, monitor, store_settings):
    await fill_store(store_settings, things=2, others=0)
    user, password = monitor
    async with logged_in(console, user, password) as client:
        assert "2 event(s) in the dead-letter store" in (await client.get("/failed")).text
        replay = await console.finished(client, await console.act(
            client, "/actions/replay", scope="all", step="confirm"))
        assert "refused" in replay
        assert "ACCESS_REFUSED" in replay
        purge = await console.finished(client, await console.act(
            client, "/actions/purge", scope="group", step="confirm", **ALPHA_PERMANENT))
        assert "refused" in purge
        assert "write on amq.default" in purge
    assert await stored(store_settings) == 2  # nothing replayed, nothing purged
    records = await console.state.audit.recent()
    assert [(r.user, r.action, r.state) for r in records] == [
        (user, "purge", "refused"), (user, "replay", "refused")]


async def test_an_action_without_the_sessions_csrf_token_is_refused_and_not_recorded(
        console, operator, store_settings):
    await fill_store(store_settings, things=2, others=0)
    user, password = operator
    async with logged_in(console, user, password) as client:
        forged = await client.post("/actions/replay", data={"scope": "all", "step": "confirm"})
        assert forged.status_code == 403
        wrong = await client.post("/actions/purge", data={
            "csrf": "guessed", "scope": "group", "step": "confirm", **ALPHA_PERMANENT})
        assert wrong.status_code == 403
        other_site = await client.post("/actions/replay", headers={"origin": "http://evil.test"},
                                       data={"csrf": await console.csrf(client), "scope": "all",
                                             "step": "confirm"})
        assert other_site.status_code == 403
    assert await stored(store_settings) == 2
    assert await console.state.audit.recent() == []


async def test_purging_a_group_asks_first_then_deletes_only_that_group(
        console, operator, store_settings):
    await fill_store(store_settings, things=4, others=2)
    user, password = operator
    async with logged_in(console, user, password) as client:
        ask = await console.act(client, "/actions/purge", scope="group", **ALPHA_PERMANENT)
        assert "Would delete" in ask.text
        assert 'id="dry-run-count">2<' in ask.text
        assert await stored(store_settings) == 6  # asking deleted nothing
        done = await console.finished(client, await console.act(
            client, "/actions/purge", scope="group", step="confirm", **ALPHA_PERMANENT))
        assert "purged 2 event(s)" in done
    assert await stored(store_settings) == 4


async def test_operator_pauses_and_resumes_a_consumer_on_the_control_log_as_themselves(
        console, broker, vhost, store_settings):
    await fill_store(store_settings, things=1, others=0)  # the topology, the control log
    # An operator as `pipeline users` makes one, who may also read the control log
    read = "^(" + re.escape(STORE) + "|" + re.escape(naming.CONTROL_LOG) + ")$"
    with broker_user(broker, vhost, "management", "^$", "^amq\\.default$", read) as (
            user, password):
        async with logged_in(console, user, password) as client:
            assert "running" in (await client.get("/")).text
            done = await console.finished(client, await console.act(
                client, "/actions/pause", consumer="alpha"))
            assert "paused alpha" in done
            # The pause is on the control log, issued by the console's user
            paused = await read_pauses(store_settings)
            assert paused["alpha"].issued_by == user
            assert "beta" not in paused
            overview = (await client.get("/")).text
            assert "paused" in overview
            assert "Resume" in overview
            done = await console.finished(client, await console.act(
                client, "/actions/resume", consumer="alpha"))
            assert "resumed alpha" in done
            assert await read_pauses(store_settings) == {}


async def test_a_read_only_user_cannot_pause_the_broker_refuses_the_command(
        console, monitor, store_settings):
    await fill_store(store_settings, things=1, others=0)
    user, password = monitor
    async with logged_in(console, user, password) as client:
        done = await console.finished(client, await console.act(
            client, "/actions/pause", consumer="alpha"))
        assert "failed" in done
        assert "ACCESS_REFUSED" in done
    assert await read_pauses(store_settings) == {}
