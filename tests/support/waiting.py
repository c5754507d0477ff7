"""Wait for something with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0,
                     interval: float = 0.05) -> T:
    """Call ``check`` until it stops raising AssertionError; re-raise the last at the deadline."""
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(AssertionError),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(interval),
        ):
            with attempt:
                return await check()
    except RetryError as exc:
        exc.reraise()
    raise AssertionError("unreachable")


async def wait_for(event: asyncio.Event, timeout: float = 10.0, what: str = "event") -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
