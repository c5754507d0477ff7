"""The recipes in docs/integrations.md work as written, against a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import aio_pika
import httpx
import pytest
import uvicorn

from pipeline import App, Consumer, Publisher
from tests.support.health import free_port
from tests.support.runtime import drain, queue_state
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[2] / "docs" / "integrations.md"


def example(name: str, language: str = "python") -> str:
    match = re.search(rf"<!-- example: {name} -->\s*```{language}\n(.*?)```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"docs/integrations.md has no {language} example named {name}"
    return match.group(1)


def load(name: str) -> ModuleType:
    module = ModuleType(f"integrations_{name}")
    exec(compile(example(name), f"{DOC}:{name}", "exec", dont_inherit=True), module.__dict__)
    return module


async def bind(connection, settings, pattern: str) -> None:
    """A consumer queue bound with ``pattern``, so publishes are routable (or not)."""
    consumer = Consumer("billing", [pattern])
    await apply_topology(connection, App([consumer]).topology(settings.ladder, 20))


@pytest.fixture
def service_env(settings, monkeypatch):
    """The service reads its settings from PIPELINE_* like a deployed one."""
    for name in list(os.environ):
        if name.startswith("PIPELINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIPELINE_AMQP_URL", settings.amqp_url.get_secret_value())
    return settings


@contextlib.asynccontextmanager
async def serving(api) -> AsyncIterator[httpx.AsyncClient]:
    """The API under uvicorn on a free port, as `uvicorn myservice.api:api` runs it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port,
                                           lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async def started() -> None:
            assert not task.done(), "uvicorn exited while starting"
            assert server.started

        await eventually(started, timeout=15)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)  # runs the lifespan's exit: the publisher closes


async def test_fastapi_answers_202_with_the_id_of_the_confirmed_event(
    service_env, settings, connection
):
    await bind(connection, settings, "orders.#")
    recipe = load("fastapi")

    async with serving(recipe.api) as client:
        response = await client.post("/orders", json={"order_id": "1042", "amount_cents": 2599})

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    [message] = await drain(settings, "pipeline.billing", expect=1)
    assert message.message_id == event_id
    assert json.loads(message.body)["data"] == {"order_id": "1042", "amount_cents": 2599}


async def test_fastapi_answers_503_when_the_event_was_not_confirmed(
    service_env, settings, connection
):
    await bind(connection, settings, "nothing.#")  # no queue takes orders events
    recipe = load("fastapi")

    async with serving(recipe.api) as client:
        response = await client.post("/orders", json={"order_id": "1", "amount_cents": 1})

    assert response.status_code == 503
    assert "not accepted" in response.json()["detail"]


async def test_flask_publishes_from_many_request_threads_through_one_blocking_publisher(
    service_env, settings, connection
):
    await bind(connection, settings, "orders.#")
    recipe = load("flask")
    app = recipe.create_app()

    def place(n: int):
        return app.test_client().post("/orders", json={"order_id": str(n), "amount_cents": n})

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:  # like a threaded server's requests
            responses = list(pool.map(place, range(16)))
    finally:
        app.extensions["publisher"].close()

    assert [r.status_code for r in responses] == [202] * 16
    ids = {r.json["event_id"] for r in responses}
    messages = await drain(settings, "pipeline.billing", expect=16)
    assert {m.message_id for m in messages} == ids


def dockerfile_env_and_cmd(text: str) -> tuple[dict[str, str], list[str]]:
    """The final stage's ENV values and CMD of the recipe's Dockerfile."""
    logical = re.sub(r"\\\n", " ", text)
    final = logical[logical.rindex("\nFROM "):]
    env: dict[str, str] = {}
    command: list[str] = []
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
        elif line.startswith("CMD "):
            command = json.loads(line[4:])
    return env, command


@pytest.mark.slow  # pip install and a consumer process
async def test_your_package_runs_with_the_images_env_and_command(settings, tmp_path):
    # Given the package from the doc, installed as the Dockerfile's build stage does
    source = tmp_path / "src"
    (source / "myservice").mkdir(parents=True)
    (source / "myservice" / "__init__.py").write_text("")
    (source / "myservice" / "consumers.py").write_text(example("own-package"))
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "myservice"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["myservice"]\n')
    target = tmp_path / "opt" / "myservice"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(source)], check=True, timeout=300)
    env, command = dockerfile_env_and_cmd(example("own-dockerfile", "dockerfile"))
    assert env["PIPELINE_APP"] == "myservice.consumers:app"
    assert command == ["python", "-m", "consumers", "--all"]

    # When the image's command runs with the image's environment
    child = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    child.update({k: v.replace("/opt/myservice", str(target)) for k, v in env.items()})
    child.update(PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value(),
                 PIPELINE_MANAGEMENT_URL=settings.management_url.get_secret_value())
    process = subprocess.Popen([sys.executable, *command[1:]], env=child, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sys.path.insert(0, str(target))
        try:
            from myservice.consumers import InvoiceRequested
        finally:
            sys.path.remove(str(target))

        async def both_consuming() -> None:
            assert process.poll() is None, process.communicate()[1][-2000:]
            for queue in ("pipeline.invoice-mailer", "pipeline.invoice-archive"):
                try:
                    _, consumers = await queue_state(settings, queue)
                except aio_pika.exceptions.ChannelClosed:
                    raise AssertionError(f"{queue} not declared yet") from None
                assert consumers == 1

        await eventually(both_consuming, timeout=30, interval=0.3)
        async with await Publisher.connect(settings) as publisher:
            await publisher.publish(InvoiceRequested(invoice_id="INV-1"))
        await asyncio.sleep(1.0)  # the handlers print; stdout is read once it stopped
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # Then both of the package's consumers ran in that one process, and it stopped cleanly
    assert process.returncode == 0, stderr[-3000:]
    assert "sending invoice INV-1" in stdout
    assert "archived request INV-1" in stdout
    assert "consumer invoice-mailer consuming pipeline.invoice-mailer" in stderr
    assert "retry ladder 10s,1m,10m" in stderr  # the consumer's own RetryPolicy
