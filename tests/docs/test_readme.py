"""The README's quick-start code runs as written against a real broker."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"


def load_example(name: str) -> ModuleType:
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", README.read_text(),
                      re.DOTALL)
    assert match, f"README has no example named {name}"
    module = ModuleType(f"readme_{name}")
    exec(compile(match.group(1), f"README.md:{name}", "exec"), module.__dict__)
    return module


async def test_the_quickstart_publishes_and_its_handler_receives_the_order(
    settings, connection, monkeypatch, capsys
):
    example = load_example("quickstart")
    await apply_topology(connection, example.app.topology(settings.ladder, 20))
    monkeypatch.setenv("PIPELINE_AMQP_URL", settings.amqp_url.get_secret_value())

    await example.main()

    assert "confirmed by the broker:" in capsys.readouterr().out
    async with running(settings, example.app, example.billing):
        async def charged() -> None:
            assert "charging 2599 cents for order 1042" in capsys.readouterr().out

        await eventually(charged)
