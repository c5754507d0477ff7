"""Fixtures shared by the end-to-end tests."""

import pytest


@pytest.fixture
def ledger_settings(settings, tmp_path):
    """``settings`` with a ledger of its own (SQLite in the test's directory), flushed fast."""
    return settings.model_copy(update={
        "ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}", "ledger_flush_ms": 20,
    })
