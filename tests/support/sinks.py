"""Real local servers for the notifier's sinks: a tiny HTTP webhook and an SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Webhook:
    """An HTTP/1.1 server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    url: str = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests += 1
        if self.status < 300:
            self.received.append(json.loads(body))
        reason = "OK" if self.status < 300 else "Error"
        writer.write(f"HTTP/1.1 {self.status} {reason}\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def webhook(
    status: int = 200, path: str = "/hooks/T000/secret-token"
) -> AsyncIterator[Webhook]:
    """Serve on a free port; ``hook.url`` includes a secret-looking path (never logged)."""
    hook = Webhook(status)
    server = await asyncio.start_server(hook._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hook.url = f"http://127.0.0.1:{port}{path}"
    async with server:
        yield hook


class _Mailbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.original_content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[_Mailbox, int]]:
    """A real aiosmtpd server (in its own thread) that keeps every mail."""
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
