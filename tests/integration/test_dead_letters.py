"""The dead-letter store: list, show and purge, on a real broker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline import store
from pipeline.store import Selection
from tests.support.runtime import drain, queue_state
from tests.support.store import cli_env, fill_store, run_cli

pytestmark = pytest.mark.integration

STORE = "pipeline.dead-letter.store"


@pytest.fixture
async def filled(settings) -> int:
    """4 alpha dead letters (2 permanent-error, 2 retries-exhausted) + 2 beta ones."""
    return await fill_store(settings)


async def test_listing_twice_loses_reorders_and_duplicates_nothing(settings, filled):
    first, total = await store.list_stored(settings, Selection())
    second, _ = await store.list_stored(settings, Selection())

    assert total == filled == len(first)
    assert [s.message_id for s in first] == [s.message_id for s in second]
    assert len({s.message_id for s in first}) == filled
    # the store still holds every message, in the order the listing showed
    raw = await drain(settings, STORE, expect=filled)
    assert [m.message_id for m in raw] == [s.message_id for s in first]


async def test_list_filters_by_consumer_type_reason_and_age(settings, filled):
    async def ids(**criteria) -> set[str]:
        found, _ = await store.list_stored(settings, Selection(**criteria))
        return {s.message_id for s in found}

    everything = await ids()
    alpha, beta = await ids(consumer="alpha"), await ids(consumer="beta")
    assert len(alpha) == 4
    assert len(beta) == 2
    assert alpha | beta == everything
    assert await ids(event_type="things.other.happened") == beta
    permanent = await ids(reason="permanent-error")
    exhausted = await ids(reason="retries-exhausted")
    assert len(permanent) == 4
    assert len(exhausted) == 2
    assert exhausted <= alpha
    assert await ids(since=timedelta(hours=1)) == everything
    assert await ids(older_than=timedelta(hours=1)) == set()
    found, _ = await store.list_stored(settings, Selection(reason="retries-exhausted"))
    assert {s.attempts for s in found} == {4}  # first delivery + 3 rungs
    assert all(s.error.startswith("TransientError: thing") for s in found)


async def test_cli_list_and_show_print_what_an_operator_needs(settings, filled, monkeypatch,
                                                             capsys):
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)

    assert await run_cli(["dead-letters", "list", "--consumer", "beta", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["consumer"] for row in listed] == ["beta", "beta"]
    assert {row["reason"] for row in listed} == {"permanent-error"}

    event_id = listed[0]["id"]
    assert await run_cli(["dead-letters", "show", event_id, "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["error"].startswith("CardExpiredError: other")
    assert "CardExpiredError" in shown["traceback"]
    assert shown["body"]["id"] == event_id
    assert shown["headers"]["pipeline-origin-queue"] == "pipeline.beta"
    assert shown["attempts"] == 1

    assert await run_cli(["dead-letters", "show", event_id]) == 0
    text = capsys.readouterr().out
    assert f"pipeline dead-letters replay {event_id}" in text
    assert "traceback" in text

    assert await run_cli(["dead-letters", "list"]) == 0
    table = capsys.readouterr().out
    assert "6 shown of 6" in table
    assert "alpha" in table
    assert "beta" in table

    assert await run_cli(["dead-letters", "show", "no-such-id"]) == 6
    assert "no event no-such-id" in capsys.readouterr().err
    assert (await queue_state(settings, STORE))[0] == filled


async def test_purge_deletes_only_what_was_selected_and_only_with_yes(settings, filled,
                                                                     monkeypatch, capsys):
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)

    assert await run_cli(["dead-letters", "purge", "--consumer", "beta"]) == 0
    assert "Would purge 2" in capsys.readouterr().out
    assert (await queue_state(settings, STORE))[0] == filled

    assert await run_cli(["dead-letters", "purge", "--older-than", "7d", "--yes"]) == 0
    assert "purged 0" in capsys.readouterr().out

    assert await run_cli(["dead-letters", "purge", "--consumer", "beta", "--yes"]) == 0
    assert "purged 2" in capsys.readouterr().out
    left, total = await store.list_stored(settings, Selection())
    assert total == filled - 2
    assert {s.consumer for s in left} == {"alpha"}
