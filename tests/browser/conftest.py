"""A real headless Chromium (Debian's) driven by Playwright, and `pipeline console` serving.

The browser is /usr/bin/chromium from the system packages (`.ci/run` installs
it); Playwright never downloads one. Without it these tests fail saying how
to install it: they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.health import free_port

CHROMIUM = "/usr/bin/chromium"
# The flags that work on our machines: no sandbox as root, and no calls home
# (background networking is refused by the closed network, many times a second).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# `make console-screenshots` sets this to docs/images: the docs show what the tests saw.
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS"


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's browser with "
                    "`apt-get install -y chromium chromium-driver` (bash .ci/run does)",
                    pytrace=False)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[object]:
    """``await browser("name")``: a fresh Chromium with its own profile (own cookies)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright, contextlib.AsyncExitStack() as stack:

        async def open_browser(name: str):  # type: ignore[no-untyped-def]
            # A fresh --user-data-dir per browser (Playwright passes it for us).
            context = await playwright.chromium.launch_persistent_context(
                str(tmp_path / f"profile-{name}"), executable_path=chromium, headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1360, "height": 860})
            stack.push_async_callback(context.close)
            return context

        yield open_browser


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    target = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def console_process(env: dict[str, str], log: Path) -> Iterator[str]:
    """`pipeline console` on a free port until the block ends; its base URL."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "console", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"pipeline console exited {process.returncode}: "
                                     f"{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"pipeline console did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
