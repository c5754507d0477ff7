"""The interface of what the publish side sends, in one place.

    Outgoing   a body and AMQP properties: an aio-pika ``Message`` or our own
               lighter pair (``publisher._Encoded``); ``send_confirmed`` takes either
"""

from __future__ import annotations

from typing import Protocol

import aiormq


class Outgoing(Protocol):
    """What ``send_confirmed`` sends: an aio-pika ``Message`` or anything with these two."""

    @property
    def body(self) -> bytes: ...

    @property
    def properties(self) -> aiormq.spec.Basic.Properties: ...
