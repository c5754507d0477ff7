"""The examples in docs/events.md work as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from consumers.orders_events import OrderPlaced
from pipeline.envelope import decode, read_data

DOC = Path(__file__).parents[2] / "docs" / "events.md"


def example(name: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- example: {name} -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert match, f"docs/events.md has no example named {name}"
    return match.group(1)


def test_the_documented_cloudevent_is_read_by_the_orders_consumers():
    body = example("cloudevent")
    envelope = decode(body.encode())
    event = read_data(envelope, OrderPlaced)
    assert envelope.type == OrderPlaced.event_type
    assert event.order_id == json.loads(body)["data"]["order_id"]
