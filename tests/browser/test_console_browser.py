"""The console in a real browser: log in, find a failed group, open an event, replay it,
watch it leave the store; a read-only user is refused the replay by the broker."""

from __future__ import annotations

import os
import re

import pytest

from pipeline.ledger.query import LedgerQuery
from pipeline.ledger.schema import engine_for
from pipeline.ledger.worker import ledger_plan
from tests.browser.conftest import console_process, until
from tests.console.conftest import OPERATOR, READ_ONLY
from tests.support.console import broker_user
from tests.support.runtime import queue_state, running
from tests.support.store import failing_app, fill_store

pytestmark = pytest.mark.browser

JAEGER = "http://127.0.0.1:16686"


@pytest.fixture
def console_env(settings, broker, tmp_path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update({
        # Only the address and the vhost are used: the console acts as who logs in.
        "PIPELINE_AMQP_URL": settings.amqp_url.get_secret_value(),
        "PIPELINE_MANAGEMENT_URL": broker.management_url,
        "PIPELINE_APP": "tests.support.store:failing_app",
        "PIPELINE_RETRY_DELAYS": settings.retry_delays,
        "PIPELINE_LEDGER_URL": ledger,
        "PIPELINE_CONSOLE_AUDIT_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "PIPELINE_CONSOLE_JAEGER_URL": JAEGER,
    })
    return env


async def failures_with_ledger(settings, ledger_url: str) -> None:
    """Dead-letter 4 alpha events (2 permanent, 2 exhausted) and 1 beta, with the ledger on."""
    settings = settings.model_copy(update={"ledger_url": ledger_url, "ledger_flush_ms": 20})
    app = failing_app()
    plan = ledger_plan(settings, [c.subscription for c in app.consumers.values()])
    async with running(settings, app, plan):
        await fill_store(settings, things=4, others=1)
        query = LedgerQuery(engine_for(ledger_url))

        async def recorded() -> None:
            assert sum(query.failed_by_consumer().values()) == 5

        await until(recorded)
        query.engine.dispose()


async def log_in(page, url: str, user: str, password: str) -> None:
    await page.goto(url)
    assert "/login" in page.url
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/")


async def test_operator_replays_a_failed_event_and_a_read_only_user_is_refused(
        settings, broker, vhost, console_env, browser, screenshots, tmp_path, spans):
    # (spans: tracing is on in this process, so the failed events carry a trace id)
    await failures_with_ledger(settings, console_env["PIPELINE_LEDGER_URL"])
    with broker_user(broker, vhost, *OPERATOR) as operator, \
            broker_user(broker, vhost, *READ_ONLY) as monitor, \
            console_process(console_env, tmp_path / "console.log") as url:
        page = await (await browser("operator")).new_page()
        await log_in(page, url, *operator)
        await page.wait_for_selector("tr[data-consumer=alpha]")
        await page.screenshot(path=screenshots / "console-overview.png", full_page=True)

        # A failed group: alpha's permanent errors, two of them
        await page.click("nav >> text=Failed")
        row = page.locator("tr.group", has_text="PermanentError")
        assert await row.locator("td.num").inner_text() == "2"
        await page.screenshot(path=screenshots / "console-failed.png", full_page=True)
        await row.locator("a.button").click()
        await page.wait_for_selector("#entries")
        await page.screenshot(path=screenshots / "console-group.png", full_page=True)

        # One event: attributes, body, traceback, timeline, trace link
        link = page.locator("#entries tbody a").first
        event_id = await link.inner_text()
        await link.click()
        await page.wait_for_selector("#store article.copy")
        attributes = await page.locator("table.attributes").inner_text()
        assert "specversion" in attributes
        assert event_id in attributes
        assert "PermanentError" in await page.locator("pre.traceback").inner_text()
        assert "alpha: failed" in await page.locator("#timeline").inner_text()
        trace = await page.get_attribute("#trace-link", "href")
        assert trace is not None
        assert re.fullmatch(rf"{JAEGER}/trace/[0-9a-f]{{32}}", trace)
        await page.screenshot(path=screenshots / "console-event.png", full_page=True)

        # Replay it and watch it leave the store
        await page.click("#replay-alpha")
        await page.wait_for_selector("#outcome:text('done')", timeout=15000)
        assert "replayed 1 event(s)" in await page.locator("#result").inner_text()
        await page.screenshot(path=screenshots / "console-replayed.png", full_page=True)
        await page.goto(f"{url}/events/{event_id}")
        await page.wait_for_selector("#not-stored")
        await page.goto(f"{url}/failed")
        row = page.locator("tr.group", has_text="PermanentError")
        assert await row.locator("td.num").inner_text() == "1"

        # The read-only user sees the other one, but the broker refuses its replay
        other = await (await browser("monitor")).new_page()
        await log_in(other, url, *monitor)
        await other.goto(f"{url}/failed")
        await other.locator("tr.group", has_text="PermanentError").locator("a.button").click()
        await other.locator("#entries tbody a").first.click()
        await other.click("#replay-alpha")
        await other.wait_for_selector("#outcome:text('refused')", timeout=15000)
        assert "ACCESS_REFUSED" in await other.locator("#result").inner_text()
        await other.screenshot(path=screenshots / "console-refused.png", full_page=True)

        await page.goto(f"{url}/audit")
        audit = await page.locator("#audit").inner_text()
        assert operator[0] in audit
        assert monitor[0] in audit
        assert "refused" in audit
        await page.screenshot(path=screenshots / "console-audit.png", full_page=True)
    assert (await queue_state(settings, "pipeline.dead-letter.store"))[0] == 4
    assert (await queue_state(settings, "pipeline.alpha"))[0] == 1
