"""The example in docs/tracing.md works as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.unit.test_trace_tree import TRACE, retried_event

DOC = Path(__file__).parents[2] / "docs" / "tracing.md"


def example(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, f"docs/tracing.md has no example named {name}"
    return match.group(1)


def test_the_documented_snippet_draws_the_retried_trace_from_a_file(
    tmp_path, monkeypatch, capsys: pytest.CaptureFixture[str]
):
    lines = [json.dumps(record.as_dict()) for record in retried_event()]
    (tmp_path / "spans.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)

    exec(compile(example("read-trace-file"), str(DOC), "exec"), {})

    printed = capsys.readouterr().out
    assert printed.startswith(f"trace {TRACE} · 6 spans")
    assert "retry pipeline.billing.retry.01.1s" in printed
    assert "waited 1.00 s" in printed
