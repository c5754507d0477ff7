"""The examples in docs/scheduling.md work as written."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import App

DOC = Path(__file__).parents[2] / "docs" / "scheduling.md"


def example(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/scheduling.md has no example named {name}"
    return match.group(1)


def test_the_schedules_example_builds_an_app_whose_ticks_are_as_documented():
    namespace: dict[str, object] = {"__name__": "scheduling_doc"}
    exec(compile(example("schedules"), str(DOC), "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, App)
    assert set(app.schedules) == {"reports.daily", "cache.refresh.due"}
    now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert app.schedules["reports.daily"].next_after(now) == datetime(2026, 12, 2, 6, 0,
                                                                      tzinfo=UTC)
    assert app.schedules["cache.refresh.due"].next_after(now) == now + timedelta(minutes=5)
    assert app.schedules["reports.daily"].missed == "once"
