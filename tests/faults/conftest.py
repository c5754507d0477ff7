"""Fixtures for fault tests: one throwaway RabbitMQ node per session, never the shared one.

Every test gets its own vhost on that node, a ledger file and a factory of
consumer processes; whatever happens, the processes are killed and the node
destroyed (``finally``), and nodes left by a killed session are reaped first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import PipelineSettings
from tests.conftest import make_settings
from tests.faults.harness import ConsumerFactory, consumers  # noqa: F401  (a fixture)
from tests.faults.ledger import Ledger
from tests.faults.node import NodeError, ThrowawayBroker, port_open, throwaway_node
from tests.support.broker import vhost_name

# Rows for the reliability table, printed at the end of the run (docs/reliability.md).
REPORT: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def throwaway_broker() -> Iterator[ThrowawayBroker]:
    """A RabbitMQ node of our own (own ports, data dir, cookie), destroyed at the end."""
    with throwaway_node() as node:
        yield node


@pytest.fixture
def node(throwaway_broker: ThrowawayBroker) -> Iterator[ThrowawayBroker]:
    """The session node, running and alarm-free before and after the test."""
    if throwaway_broker.pid is None or not port_open(throwaway_broker.amqp_port):
        throwaway_broker.restart()  # an earlier test failed while the node was down
    try:
        yield throwaway_broker
    finally:
        if throwaway_broker.pid is None:
            throwaway_broker.restart()
        try:
            throwaway_broker.ctl("set_vm_memory_high_watermark", "0.4")
            throwaway_broker.ctl("set_disk_free_limit", "50MB")
        except NodeError:
            throwaway_broker.kill9()  # leave it for the next test to restart clean


@pytest.fixture
def node_settings(node: ThrowawayBroker, request: pytest.FixtureRequest,
                  ) -> Iterator[PipelineSettings]:
    """Settings for a fresh vhost on the throwaway node (short ladder, quick reconnects)."""
    endpoint = node.endpoint
    name = vhost_name(request.node.nodeid)
    endpoint.create_vhost(name)
    try:
        yield make_settings(endpoint, name, reconnect_interval_s=0.5, confirm_timeout_s=10.0,
                            connect_timeout_s=30.0)
    finally:
        if node.pid is not None:
            endpoint.delete_vhost(name)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def ledger(ledger_path: Path) -> Iterator[Ledger]:
    book = Ledger(ledger_path)
    try:
        yield book
    finally:
        book.close()


@pytest.fixture
def report() -> Any:
    """``report(scenario=..., load=..., faults=..., lost=..., duplicated=..., ...)``."""
    return lambda **row: REPORT.append(row)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("reliability (docs/reliability.md)")
    columns = ["scenario", "load", "faults", "lost", "duplicated", "bound", "notes"]
    terminalreporter.write_line(" | ".join(columns))
    for row in REPORT:
        terminalreporter.write_line(" | ".join(str(row.get(c, "")) for c in columns))
