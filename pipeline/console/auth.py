"""Logging in against RabbitMQ itself, and asking the broker what a user may do.

A user logs in with a broker user name and password. The management API's
``/whoami`` checks the password and says the user's tags (a user without a
management tag cannot read queue depths, so it cannot use the console); an
AMQP connection to the vhost checks that the user may use the vhost at all.
The console keeps no user list and no permissions of its own.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aio_pika import Message
from aiormq.exceptions import ChannelAccessRefused

from pipeline.connection import connect
from pipeline.console.credentials import as_user
from pipeline.ops.management import ManagementClient
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who is logged in, as the broker knows them."""

    user: str
    tags: tuple[str, ...]


async def log_in(
    settings: PipelineSettings, user: str, password: str
) -> tuple[Identity, PipelineSettings]:
    """The user's identity and the settings that act as them.

    Raises ``CredentialsRefusedError`` when the broker refuses the name, the
    password, the vhost or a user without a management tag, and
    ``BrokerUnreachableError`` when the broker does not answer.
    """
    acting = as_user(settings, user, password)
    async with ManagementClient(acting) as api:
        me = await api.get("/whoami")
    tags = me.get("tags") or []
    if isinstance(tags, str):  # RabbitMQ 3.x answers "a,b"; 3.9+ and 4.x a list
        tags = [t for t in tags.split(",") if t]
    await _check_vhost(acting)
    return Identity(str(me.get("name") or user), tuple(str(t) for t in tags)), acting


async def _check_vhost(acting: PipelineSettings) -> None:
    connection = await connect(acting, f"{acting.service_name}.console.login")
    with contextlib.suppress(Exception):
        await connection.close()


async def may_write_default_exchange(acting: PipelineSettings) -> bool:
    """Whether the broker lets this user publish to the default exchange.

    That permission is what replay needs (it republishes to a consumer's
    queue by name); the console asks the broker before a purge, which
    RabbitMQ counts as reading. The probe publishes an empty message with no
    routing key and no ``mandatory`` flag: it reaches no queue and changes
    nothing. Raises ``BrokerUnreachableError``.
    """
    connection = await connect(acting, f"{acting.service_name}.console.probe")
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await channel.default_exchange.publish(Message(b""), routing_key="", mandatory=False)
        except ChannelAccessRefused:
            return False
        return True
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
