"""What a user's service installs: publishing needs only the base dependencies.

``pip install rabbit-pipeline`` (no extras) must be enough to publish, in
async and sync code. The check runs in a fresh interpreter in which the
extras' packages (the CLI's, the worker's, the SDK) cannot be imported, as
on a machine where they are not installed, and publishes to the real broker.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import App, Consumer
from tests.support.events import ThingHappened
from tests.support.runtime import drain
from tests.unit.test_telemetry import run_python
from topology import apply_topology

pytestmark = pytest.mark.integration

PUBLISH_WITHOUT_EXTRAS = """
import asyncio, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"rich", "httpx", "prometheus_client"} or \\
                name.startswith("opentelemetry.sdk"):
            raise ImportError(f"{name} is not installed (an extra)")
        return None

sys.meta_path.insert(0, NotInstalled())

from pipeline import BlockingPublisher, PipelineSettings, Publisher
from tests.support.events import ThingHappened

settings = PipelineSettings()

async def publish_async():
    async with await Publisher.connect(settings) as publisher:
        return await publisher.publish(ThingHappened(n=1))

print(asyncio.run(publish_async()))
with BlockingPublisher(settings) as publisher:
    print(publisher.publish(ThingHappened(n=2)))
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"rich", "httpx", "prometheus_client"})
print("extras imported:", loaded or "none")
"""


async def test_a_publishing_service_needs_no_extra(settings, connection):
    consumer = Consumer("things", ["things.#"])
    consumer.handler(_ignore)
    await apply_topology(connection, App([consumer]).topology(settings.ladder, 3))

    result = run_python(
        PUBLISH_WITHOUT_EXTRAS, PIPELINE_AMQP_URL=settings.amqp_url.get_secret_value()
    )

    assert result.returncode == 0, result.stderr
    first, second, extras = result.stdout.splitlines()
    assert extras == "extras imported: none"
    arrived = await drain(settings, "pipeline.things", expect=2)
    assert {m.message_id for m in arrived} == {first, second}


async def _ignore(event: ThingHappened) -> None:
    return None


def test_the_wheel_ships_every_type_marker_and_the_licence(tmp_path):
    root = Path(__file__).resolve().parents[2]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(root)], capture_output=True, text=True, timeout=180, check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("rabbit_pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for package in ("pipeline", "topology", "consumers"):
        assert f"{package}/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    # The console's pages, script and style ship inside the package.
    console = Path(root / "pipeline" / "console")
    for part in (*console.glob("templates/*.html"), *console.glob("static/*")):
        assert part.relative_to(root).as_posix() in names, part.name
