"""A maximum message size, enforced at publish (a clear error) and by the broker."""

from __future__ import annotations

import aio_pika
import pytest

from pipeline import Publisher
from pipeline.errors import MessageTooLargeError, PublishError
from pipeline.publish.outbound import ExchangeCache, send_confirmed
from tests.apps.faults_ledger import ItemRecorded
from tests.faults.harness import QUEUE, declare
from tests.security.conftest import BROKER_MAX_MESSAGE_BYTES
from tests.support.runtime import queue_state
from topology import naming

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_an_event_over_the_configured_size_is_refused_before_it_is_sent(
    secure_settings, tmp_path
):
    await declare(secure_settings, tmp_path / "ledger.sqlite")
    settings = secure_settings.model_copy(update={"max_message_bytes": 4096})
    async with await Publisher.connect(settings) as publisher:
        with pytest.raises(MessageTooLargeError, match="PIPELINE_MAX_MESSAGE_BYTES=4096"):
            await publisher.publish(ItemRecorded(key="big", blob="x" * 10_000))
        await publisher.publish(ItemRecorded(key="small"))
    ready, _ = await queue_state(secure_settings, QUEUE)
    assert ready == 1  # only the small one


async def test_the_broker_refuses_a_message_over_its_max_message_size_with_a_clear_error(
    secure_settings, tmp_path
):
    # Given a client that skips our check (another language, an old version)
    await declare(secure_settings, tmp_path / "ledger.sqlite")
    body = b"x" * (BROKER_MAX_MESSAGE_BYTES + 1)
    connection = await aio_pika.connect_robust(secure_settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # When it publishes more than the node's max_message_size
        with pytest.raises(PublishError) as caught:
            await send_confirmed(ExchangeCache(channel), naming.EVENTS_EXCHANGE,
                                 ItemRecorded.event_type, aio_pika.Message(body), 5)
    # Then the broker refused it, saying why, and stored nothing
    assert "larger than configured max size" in str(caught.value)
    ready, _ = await queue_state(secure_settings, QUEUE)
    assert ready == 0
