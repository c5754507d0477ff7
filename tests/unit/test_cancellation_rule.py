"""No code we ship waits with ``asyncio.wait_for`` (no broker).

On Python 3.11 ``wait_for`` returns normally when a cancellation lands just as
the wait finishes, so a task told to stop runs on: a ledger recorder's stop
hung forever that way (tests/integration/test_service_stop.py). Our waits use
``asyncio.timeout``, which keeps the cancellation.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("pipeline", "consumers", "topology")


def _wait_for_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "wait_for"
            and isinstance(node.value, ast.Name) and node.value.id == "asyncio"]


# The store's page reader wants wait_for's other side: a message that arrived as
# the wait ran out is returned instead of being left unread (pipeline/store/scan.py).
ALLOWED = {"pipeline/store/scan.py": 1}


def test_no_shipped_module_waits_with_asyncio_wait_for():
    found = {str(path.relative_to(ROOT)): lines
             for package in SHIPPED for path in sorted((ROOT / package).rglob("*.py"))
             if (lines := _wait_for_calls(path))}
    unexpected = {path: lines for path, lines in found.items()
                  if len(lines) != ALLOWED.get(path)}
    assert unexpected == {}, f"use asyncio.timeout instead of asyncio.wait_for: {unexpected}"
