"""The CLI with memory://: the demo runs; commands that need another process's broker refuse."""

from __future__ import annotations

import pytest

from pipeline.commands.cli import main


@pytest.mark.parametrize("args", [["status"], ["dead-letters", "list"], ["topology", "apply"],
                                  ["consume", "billing"]])
def test_commands_that_would_see_an_empty_broker_refuse_in_one_sentence(args, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("PIPELINE_AMQP_URL", "memory://")

    code = main(args)

    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"pipeline: PIPELINE_AMQP_URL is memory://, a broker that lives "
                            f"inside one process: `pipeline {args[0]}` would only see")


def test_commands_that_need_no_broker_still_work(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_AMQP_URL", "memory://")
    monkeypatch.setenv("PIPELINE_APP", "consumers.registry:app")

    assert main(["topology", "show", "--json"]) == 0
    assert '"pipeline.billing.retry.01.1s"' in capsys.readouterr().out
