"""The examples in docs/ledger.md work as written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pipeline import PipelineSettings
from pipeline.control.commands import COMMANDS, decode, encode
from pipeline.ledger.facts import AttemptRecord, DeadLettered
from pipeline.ledger.schema import engine_for
from pipeline.ledger.store import LedgerStore

DOC = Path(__file__).parents[2] / "docs" / "ledger.md"


def example(name: str) -> str:
    match = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/ledger.md has no example named {name}"
    return match.group(1)


async def test_the_job_status_example_reads_a_failed_a_completed_and_an_unknown_job(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = engine_for(url)
    store = LedgerStore(engine)
    store.create()
    now = datetime.now(UTC)
    store.write([
        AttemptRecord("job-1", "cloudevent", "slicer", "jobs.slice.requested", 0, 0, 0, now,
                      now, "dead-lettered", error="PermanentError: bad model"),
        DeadLettered("job-1", "cloudevent", "slicer", "jobs.slice.requested", 0, 0,
                     "permanent-error", now, "PermanentError: bad model", None),
        AttemptRecord("job-2", "cloudevent", "slicer", "jobs.slice.requested", 0, 0, 0, now,
                      now, "acked"),
    ], lambda key: [], now)
    engine.dispose()
    namespace: dict[str, object] = {}
    exec(compile(example("job-status"), str(DOC), "exec"), namespace)
    job_status = namespace["job_status"]
    settings = PipelineSettings(ledger_url=url)

    assert await job_status(settings, "job-1") == "failed: permanent-error"
    assert await job_status(settings, "job-2") == "completed"
    assert await job_status(settings, "job-3") == "queued"


def test_the_documented_command_travels_through_the_log_format():
    namespace: dict[str, object] = {}
    try:
        exec(compile(example("log-level-command"), str(DOC), "exec"), namespace)
        command = namespace["SetLogLevel"](level="DEBUG")
        assert decode(encode(command)) == command
    finally:
        COMMANDS.pop("workers.log-level", None)
