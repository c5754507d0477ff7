"""Driving the console without a browser (httpx on its ASGI app) and making broker users."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from html import unescape
from urllib.parse import quote

import httpx
from starlette.applications import Starlette

from pipeline import PipelineSettings
from pipeline.console.state import ConsoleState

BASE = "http://console.test"


@contextlib.contextmanager
def broker_user(broker, vhost: str, tags: str, configure: str, write: str,
                read: str) -> Iterator[tuple[str, str]]:
    """A broker user with these tags and permissions on ``vhost``, deleted afterwards."""
    user, password = f"console-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with broker.api() as api:
        api.put(f"/users/{user}", json={"password": password, "tags": tags}).raise_for_status()
        api.put(f"/permissions/{quote(vhost, safe='')}/{user}", json={
            "configure": configure, "write": write, "read": read}).raise_for_status()
    try:
        yield user, password
    finally:
        with broker.api() as api:
            api.delete(f"/users/{user}")


def form_token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return unescape(found.group(1))


class Browserless:
    """The console app and a way to talk to it like a browser that runs no scripts."""

    def __init__(self, app: Starlette, settings: PipelineSettings) -> None:
        self.app = app
        self.settings = settings

    @property
    def state(self) -> ConsoleState:
        state: ConsoleState = self.app.state.console
        return state

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE,
                                 follow_redirects=False, timeout=60)

    async def log_in(self, client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
        page = await client.get("/login")
        token = form_token(page.text, "token")
        return await client.post("/login", data={"user": user, "password": password,
                                                 "token": token, "next": "/"})

    async def csrf(self, client: httpx.AsyncClient) -> str:
        return form_token((await client.get("/audit")).text, "csrf")

    async def act(self, client: httpx.AsyncClient, path: str, **fields: object) -> httpx.Response:
        """POST an action form with the session's CSRF token."""
        data = {"csrf": await self.csrf(client), **fields}
        return await client.post(path, data=data)  # type: ignore[arg-type]

    async def finished(self, client: httpx.AsyncClient, response: httpx.Response) -> str:
        """Wait for the action ``response`` redirected to; its record page's text."""
        assert response.status_code == 303, response.text
        await self.state.runner.wait()
        return (await client.get(response.headers["location"])).text
