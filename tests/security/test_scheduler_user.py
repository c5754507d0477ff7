"""The scheduler's own broker user is enough to lead, declare the delay levels and fire."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from pipeline import Publisher
from pipeline.declare import declare_topology
from pipeline.schedule.leader import Leadership
from pipeline.schedule.runner import Scheduler
from tests.apps.scheduled import EVERY_SECOND, TickHappened, app
from tests.security.cli import run_cli
from tests.security.conftest import as_user
from tests.support.runtime import drain
from topology import apply_topology, naming
from topology.delay import delay_topology

pytestmark = [pytest.mark.faults, pytest.mark.integration]


async def test_the_scheduler_user_leads_declares_the_delay_levels_and_fires_a_tick(
        secure_settings):
    password = f"pw-{uuid.uuid4().hex}"
    roles = ("publisher", "ticker", "scheduler", "operator", "deployer")
    result = run_cli(secure_settings, "users", "apply", PIPELINE_APP="tests.apps.scheduled:app",
                     PIPELINE_USER_PASSWORDS=json.dumps(dict.fromkeys(roles, password)))
    assert result.returncode == 0, result.stderr
    assert "pipeline-scheduler" in result.stdout
    guest = await aio_pika.connect(secure_settings.amqp_url.get_secret_value())
    async with guest:  # the consumer's queue, as its worker would declare it
        await apply_topology(guest, app.topology(secure_settings.ladder,
                                                 secure_settings.delivery_limit, False)
                             .subset("ticker"))
    scheduler_settings = as_user(secure_settings, "pipeline-scheduler", password)

    connection = await aio_pika.connect(scheduler_settings.amqp_url.get_secret_value())
    async with connection:
        await declare_topology(connection, delay_topology([c.subscription for c in
                                                           app.consumers.values()]))
        leadership = Leadership(await connection.channel(publisher_confirms=True))
        await leadership.start()
        await leadership.is_leader.wait()
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        scheduler = Scheduler([EVERY_SECOND], {TickHappened.event_type: TickHappened},
                              Publisher(channel, scheduler_settings), leadership)
        await scheduler.fire_due(datetime.now(UTC))
        # ... and nothing else: it may not read a consumer's queue
        other = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await (await other.get_queue(naming.consumer_queue("ticker"))).get(fail=False)

    [tick] = await drain(secure_settings, naming.consumer_queue("ticker"), expect=1)
    assert json.loads(tick.body)["subject"].startswith(EVERY_SECOND.name + "@")
