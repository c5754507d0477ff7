"""Headers and bodies nested thousands of levels deep, from a non-Python client.

Published through the management HTTP API (RabbitMQ builds the frame, not
our client), so the consumer decodes exactly what a foreign producer sends.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest

from pipeline import App, Consumer
from pipeline.consume.delivery import Outcome
from pipeline.header_depth import TOO_DEEP
from tests.support.events import ThingHappened
from tests.support.recording import DeliveryRecorder
from tests.support.runtime import queue_state, running
from tests.support.store import cli_env, run_cli
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

DEPTH = 5000


def nested_json(depth: int, kind: str = "table") -> str:
    """JSON nested ``depth`` levels, written by hand (json.dumps itself would recurse)."""
    if kind == "table":
        return '{"a":' * depth + '{"leaf":1}' + "}" * depth
    return "[" * depth + "1" + "]" * depth


def publish_raw_json(broker, vhost: str, routing_key: str, payload: str, headers_json: str,
                     message_id: str) -> None:
    body = (f'{{"routing_key":{json.dumps(routing_key)},"payload":{json.dumps(payload)},'
            f'"payload_encoding":"string","properties":{{"message_id":{json.dumps(message_id)},'
            f'"content_type":"application/cloudevents+json","headers":{headers_json}}}}}')
    with broker.api() as api:
        answer = api.post(f"/exchanges/{quote(vhost, safe='')}/pipeline.events/publish",
                          content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["routed"], answer.text


def cloud_event(event_id: str, data_json: str) -> str:
    return (f'{{"specversion":"1.0","id":{json.dumps(event_id)},"source":"node-shop",'
            f'"type":"things.thing.happened","data":{data_json}}}')


async def test_deep_headers_and_bodies_neither_break_the_consumer_nor_dead_letters_show(
    settings, broker, vhost, monkeypatch, capsys
):
    recorder = DeliveryRecorder()
    consumer = Consumer("billing", ["things.#"], middlewares=[recorder])

    @consumer.handler
    async def bill(event: ThingHappened) -> None:
        return None

    deep_header, deep_body, plain = (str(uuid.uuid4()) for _ in range(3))
    async with running(settings, App([consumer]), consumer) as worker:
        # Given a valid event whose header table is nested 5000 deep (and an array too)
        publish_raw_json(broker, vhost, "things.thing.happened",
                         cloud_event(deep_header, '{"n": 1}'),
                         f'{{"deep":{nested_json(DEPTH)},"list":{nested_json(DEPTH, "array")}}}',
                         deep_header)
        # and an event whose body is nested 5000 deep, and then an ordinary one
        publish_raw_json(broker, vhost, "things.thing.happened",
                         cloud_event(deep_body, f'{{"n": {nested_json(DEPTH, "array")}}}'),
                         "{}", deep_body)
        publish_raw_json(broker, vhost, "things.thing.happened",
                         cloud_event(plain, '{"n": 3}'), "{}", plain)

        async def all_three_settled() -> None:
            seen = sorted(s.message_id or "" for s in recorder.seen)
            assert seen == sorted([deep_header, deep_body, plain])

        await eventually(all_three_settled, timeout=15)
        assert not worker.task.done()
    # Then the deep header was cut at the limit and the event handled, the deep body
    # dead-lettered as invalid, the next event handled on the same connection
    outcomes = {s.message_id: s.outcome for s in recorder.seen}
    assert outcomes == {deep_header: Outcome.ACKED, deep_body: Outcome.DEAD_LETTERED,
                        plain: Outcome.ACKED}
    headers = next(s.headers for s in recorder.seen if s.message_id == deep_header)
    assert TOO_DEEP in json.dumps(headers, default=str)
    assert (await queue_state(settings, "pipeline.billing"))[0] == 0

    # And `dead-letters show` prints the deep body as text instead of crashing
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    assert await run_cli(["dead-letters", "show", deep_body, "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["reason"] == "invalid-message"
    assert shown["body"].startswith('{"specversion":"1.0"')
    assert await run_cli(["dead-letters", "show", deep_body]) == 0
    assert deep_body in capsys.readouterr().out
