"""The examples in docs/testing.md work as written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

DOC = Path(__file__).parents[2] / "docs" / "testing.md"


def example(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/testing.md has no example named {name}"
    return match.group(1)


async def test_the_first_test_passes_as_written():
    module = ModuleType("testing_doc_flaky_bank")
    exec(compile(example("flaky-bank"), f"{DOC}:flaky-bank", "exec"), module.__dict__)

    await module.test_a_flaky_bank_is_retried_until_the_charge_goes_through()

    assert module.attempts["1042"] == 3


async def test_the_context_and_policy_examples_pass_as_written():
    module = ModuleType("testing_doc_context")
    exec(compile(example("context-test"), f"{DOC}:context-test", "exec", dont_inherit=True),
         module.__dict__)

    await module.test_a_bank_timeout_is_retried_on_billings_own_ladder_then_receipted()
    await module.test_three_timeouts_use_up_billings_three_attempts()

    assert module.receipted == ["1042"]


async def test_the_inbox_example_passes_as_written(tmp_path):
    module = ModuleType("testing_doc_inbox")
    exec(compile(example("inbox-test"), f"{DOC}:inbox-test", "exec", dont_inherit=True),
         module.__dict__)

    await module.test_the_same_order_event_twice_charges_once(tmp_path)


MYSERVICE = '''
from typing import ClassVar
from pipeline import App, Consumer, Event


class OrderPlaced(Event):
    event_type: ClassVar[str] = "orders.order.placed"
    order_id: str
    country: str = "DE"


shipping = Consumer("shipping", ["orders.#"])


@shipping.handler
async def ship(event: OrderPlaced) -> None:
    if event.country == "XX":
        raise RuntimeError("no carrier ships to XX")


app = App([shipping])
'''


@pytest.mark.slow  # pytest in a subprocess
def test_the_fixture_examples_pass_in_a_project_of_their_own(pytester):
    package = pytester.mkpydir("myservice")
    (package / "consumers.py").write_text(MYSERVICE)
    (package / "events.py").write_text("from myservice.consumers import OrderPlaced\n")
    pytester.makeconftest(example("plugin-conftest"))
    pytester.makepyfile(test_shipping=example("plugin-test"))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
