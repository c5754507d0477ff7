"""Reach a worker's health server: free ports, /readyz waits, /metrics samples."""

from __future__ import annotations

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import eventually


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def wait_ready(port: int, timeout: float = 30.0) -> dict:
    """Wait until /readyz answers 200; return its JSON body."""

    async def ready() -> dict:
        try:
            response = await get(port, "/readyz")
        except httpx.HTTPError as exc:
            raise AssertionError(f"health server on :{port} not answering: {exc}") from None
        assert response.status_code == 200, response.text
        return dict(response.json())

    return await eventually(ready, timeout=timeout, interval=0.2)
