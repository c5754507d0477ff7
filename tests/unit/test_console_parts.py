"""The console's parts that need no broker: credentials, groups, sessions, redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.console import session as session_module
from pipeline.console.auth import Identity
from pipeline.console.credentials import as_user, with_user
from pipeline.console.groups import group_failed
from pipeline.console.login import _next
from pipeline.console.session import SessionStore, tokens_match
from pipeline.console.store_gate import StoreBusyError, StoreGate
from pipeline.settings import PipelineSettings
from pipeline.store import Selection, StoredMessage, error_type_of
from pipeline.store.entry import CRASH_LOOP_ERROR

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def stored(consumer: str, error: str, minutes_ago: int = 0, reason: str = "permanent-error",
           event_type: str = "orders.order.placed") -> StoredMessage:
    return StoredMessage(
        message_id=f"{consumer}-{minutes_ago}", event_type=event_type, consumer=consumer,
        origin_queue=f"pipeline.{consumer}", reason=reason, error=error, attempts=1, replays=0,
        dead_lettered_at=NOW - timedelta(minutes=minutes_ago), trace_id=None, body=b"{}",
        headers={})


@pytest.mark.parametrize(("url", "expected"), [
    ("amqp://guest:guest@127.0.0.1:5672/vh", "amqp://ann:p%40ss%3Aw%2Fd@127.0.0.1:5672/vh"),
    ("amqp://127.0.0.1/", "amqp://ann:p%40ss%3Aw%2Fd@127.0.0.1/"),
    ("amqps://a:b@h1:5671,h2:5671/vh?cafile=/ca.pem",
     "amqps://ann:p%40ss%3Aw%2Fd@h1:5671,h2:5671/vh?cafile=/ca.pem"),
    ("http://a:b@n1:15672/, http://c:d@n2:15672/",
     "http://ann:p%40ss%3Aw%2Fd@n1:15672/, http://ann:p%40ss%3Aw%2Fd@n2:15672/"),
])
def test_every_node_url_carries_the_logged_in_users_credentials_only(url, expected):
    assert with_user(url, "ann", "p@ss:w/d") == expected


def test_acting_as_a_user_keeps_the_broker_vhost_app_and_ledger():
    base = PipelineSettings(amqp_url="amqp://guest:guest@rabbit:5672/shop",
                            management_url="http://guest:guest@rabbit:15672/",
                            app="consumers.registry:app", ledger_url="sqlite:///l.db")
    acting = as_user(base, "ann", "secret")
    assert acting.amqp_url.get_secret_value() == "amqp://ann:secret@rabbit:5672/shop"
    assert acting.management_url.get_secret_value() == "http://ann:secret@rabbit:15672/"
    assert (acting.vhost, acting.app, acting.ledger_url) == ("shop", base.app, base.ledger_url)
    assert "secret" not in acting.safe_amqp_url
    assert "secret" not in repr(acting)


def test_failures_group_by_consumer_event_type_and_error_type_largest_first():
    groups = group_failed([
        stored("billing", "TransientError: bank timed out", 9, "retries-exhausted"),
        stored("billing", "TransientError: bank down\nmore", 1, "retries-exhausted"),
        stored("billing", "CardExpiredError: card 1 expired", 5),
        stored("billing", "TransientError: other type", 3, event_type="orders.order.paid"),
        stored("shipping", CRASH_LOOP_ERROR, 2, "delivery-limit"),
    ])
    labels = [(g.key.label, g.count) for g in groups]
    assert labels[0] == ("billing / orders.order.placed / TransientError", 2)
    assert sorted(labels[1:]) == [
        ("billing / orders.order.paid / TransientError", 1),
        ("billing / orders.order.placed / CardExpiredError", 1),
        ("shipping / orders.order.placed / delivery-limit", 1),
    ]
    biggest = groups[0]
    assert biggest.error == "TransientError: bank down"  # the newest error's first line
    assert (biggest.first_seen, biggest.last_seen) == (NOW - timedelta(minutes=9),
                                                       NOW - timedelta(minutes=1))


def test_a_group_selects_exactly_its_members():
    members = [stored("billing", "TransientError: a"), stored("billing", "KeyError: 'x'"),
               stored("billing", "pkg.mod.Failure: b"), stored("shipping", "TransientError: c")]
    assert [error_type_of(s) for s in members] == [
        "TransientError", "KeyError", "pkg.mod.Failure", "TransientError"]
    group = group_failed(members[:1])[0].key.selection
    assert group == Selection(consumer="billing", event_type="orders.order.placed",
                              error_type="TransientError")
    assert [s.error for s in members if group.matches(s, NOW)] == ["TransientError: a"]


def test_sessions_end_after_idle_time_and_after_their_lifetime(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(session_module.time, "monotonic", lambda: clock[0])
    store = SessionStore(idle_s=60, max_s=300)
    settings = PipelineSettings()
    active = store.create(Identity("ann", ("management",)), settings)
    idle = store.create(Identity("bob", ()), settings)
    for _ in range(4):  # ann keeps clicking, bob does not
        clock[0] += 50
        assert store.get(active.id) is active
    assert store.get(idle.id) is None
    clock[0] += 120  # 320 s after login: over the lifetime, however busy
    assert store.get(active.id) is None
    assert len(store) == 0
    assert store.get(None) is None


def test_tokens_match_only_the_same_token():
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("abc", None)
    assert not tokens_match("", "")


@pytest.mark.parametrize(("target", "expected"), [
    ("/failed?x=1", "/failed?x=1"), ("//evil.test/", "/"), ("https://evil.test/", "/"),
    (None, "/"), ("", "/")])
def test_after_login_the_console_only_goes_to_its_own_pages(target, expected):
    assert _next(target) == expected


async def test_while_an_action_holds_the_store_a_listing_says_so_instead_of_a_partial_list():
    gate = StoreGate()
    async with gate.hold("a replay by ann (audit #7)"):
        with pytest.raises(StoreBusyError, match=r"busy: a replay by ann \(audit #7\)"):
            await gate.read(PipelineSettings(), Selection())
        with pytest.raises(StoreBusyError):
            await gate.dry_run(PipelineSettings(), Selection())
    assert gate.action is None
