"""The pytest plugin, as a user's project meets it: installed, then fixtures by name."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # each test runs pytest in a subprocess

CONFTEST = '''
import pytest
from typing import ClassVar
from pipeline import App, Consumer, Event, PipelineSettings, TransientError

class OrderPlaced(Event):
    event_type: ClassVar[str] = "orders.order.placed"
    order_id: str

billing = Consumer("billing", ["orders.#"])
tries = []

@billing.handler
async def charge(event: OrderPlaced) -> None:
    tries.append(event.order_id)
    if len(tries) < 3:
        raise TransientError("bank timed out")

@pytest.fixture
def pipeline_app():
    return App([billing])
'''

TEST = '''
from datetime import timedelta
import pytest
from conftest import OrderPlaced

@pytest.mark.asyncio
async def test_billing_retries_until_the_bank_answers(test_pipeline):
    event_id = await test_pipeline.publish(OrderPlaced(order_id="1042"))
    await test_pipeline.advance(timedelta(seconds=6))
    assert test_pipeline.where(event_id, "billing").state == "handled"
'''


def test_the_installed_plugin_gives_a_user_a_running_test_pipeline(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_billing=TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_without_a_pipeline_app_fixture_the_test_fails_saying_what_to_define(pytester):
    pytester.makepyfile(test_nothing='''
import pytest

@pytest.mark.asyncio
async def test_needs_an_app(test_pipeline):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a `pipeline_app` fixture in your conftest.py*"])
