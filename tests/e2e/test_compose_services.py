"""Every service of ours in docker-compose.yml, run as a local process.

There is no Docker engine here, so each service's command runs with that
service's environment from the compose file, rewritten only where a
container differs from this machine: the hosts ``rabbitmq`` and ``jaeger``
become 127.0.0.1 (the local broker, and a local stand-in for Jaeger's OTLP
receiver), the vhost becomes the test's own, the credentials are the test
broker's (as a .env would give them) and each health port is a free one.
Of the node lists (rabbitmq, rabbitmq-2, rabbitmq-3) only node 1 is kept:
this machine runs one node, as compose does without ``--profile cluster``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from tests.support import compose
from tests.support.health import free_port, get, metric_value, wait_ready
from tests.support.otlp import OtlpSink
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent
WORKERS = ("billing", "shipping", "audit", "admin-notifier", "ledger")


def _rehost(url: str, endpoint: str, path: str | None = None) -> str:
    """``url`` pointed at ``endpoint``'s host and port (and ``path``, if given)."""
    parts, target = urlsplit(url), urlsplit(endpoint)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{target.hostname}:{target.port}" if auth else f"{target.netloc}"
    return urlunsplit(parts._replace(netloc=netloc, path=parts.path if path is None else path))


class Services:
    """The compose file's services of ours, as processes on this machine."""

    def __init__(self, broker, vhost: str, otlp_url: str, logs: Path) -> None:
        amqp = urlsplit(broker.amqp_url)
        dotenv = {**compose.read_env_file(), "RABBITMQ_USER": amqp.username or "guest",
                  "RABBITMQ_PASSWORD": amqp.password or "guest"}
        self.document = compose.load(dotenv)
        self._broker, self._vhost, self._otlp, self._logs = broker, vhost, otlp_url, logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def environment(self, name: str) -> dict[str, str]:
        service_env = compose.environment_of(self.document["services"][name])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "OTEL_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        for key, value in service_env.items():
            if key in ("PIPELINE_AMQP_URL", "PIPELINE_MANAGEMENT_URL"):
                value = value.split(",")[0]
            if key == "PIPELINE_AMQP_URL":
                value = _rehost(value, self._broker.amqp_url, "/" + quote(self._vhost, safe=""))
            elif key == "PIPELINE_MANAGEMENT_URL":
                value = _rehost(value, self._broker.management_url)
            elif key == "OTEL_EXPORTER_OTLP_ENDPOINT":
                value = _rehost(value, self._otlp)
            elif key == "PIPELINE_LEDGER_URL":  # the container's volume: a file of the test's
                value = f"sqlite:///{self._logs / 'ledger.db'}"
            elif key == "PIPELINE_HEALTH_HOST":
                value = "127.0.0.1"
            elif key in ("PIPELINE_HEALTH_PORT", "PIPELINE_CONSOLE_PORT"):
                self.ports[name] = free_port()
                value = str(self.ports[name])
            elif key == "PIPELINE_CONSOLE_HOST":
                value = "127.0.0.1"
            elif key == "PIPELINE_CONSOLE_AUDIT_URL":
                value = f"sqlite:///{self._logs / 'audit.db'}"
            env[key] = value
        return env

    def command(self, name: str) -> list[str]:
        service = self.document["services"][name]
        command = list(service["command"])
        mounts = compose.bind_mounts(service)
        if command[0] == "python":
            command[0] = sys.executable
        elif command[0] == "pipeline":
            command[0] = str(BIN / "pipeline")
        return [str(mounts.get(part, part)) for part in command]

    def run_once(self, name: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(name), env=self.environment(name), timeout=timeout,
                              capture_output=True, text=True)

    def start(self, name: str) -> None:
        with (self._logs / f"{name}.log").open("wb") as log:  # the child keeps its own fd
            self.processes[name] = subprocess.Popen(
                self.command(name), env=self.environment(name), stdout=log, stderr=log
            )

    def log(self, name: str) -> str:
        return (self._logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self, name: str, timeout: float) -> int:
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def services(broker, vhost, tmp_path) -> Iterator[tuple[Services, OtlpSink]]:
    with OtlpSink().running() as sink:
        running = Services(broker, vhost, sink.url, tmp_path)
        try:
            yield running, sink
        finally:
            running.kill_all()


async def test_every_compose_service_of_ours_runs_and_becomes_ready(services):
    running, sink = services
    ours = compose.our_services(running.document)
    assert set(ours) == {"users", "topology", *WORKERS, "demo-producer", "console"}

    # The one-shot users service creates one user per role (permissions on the test's
    # vhost only), then the topology service applies the topology as the deployer.
    users = running.run_once("users")
    assert users.returncode == 0, users.stderr
    assert "users applied" in users.stdout
    done = running.run_once("topology")
    assert done.returncode == 0, done.stderr
    assert "topology applied" in done.stdout

    # Each worker becomes ready: connected, topology verified, consuming.
    for name in WORKERS:
        running.start(name)
    for name in WORKERS:
        try:
            body = await wait_ready(running.ports[name], timeout=60)
        except AssertionError:
            pytest.fail(f"{name} never became ready:\n{running.log(name)}")
        assert body["ready"] is True

    # The demo producer (profile "demo") feeds them; billing acks its orders.
    running.start("demo-producer")

    async def billing_acked() -> None:
        text = (await get(running.ports["billing"], "/metrics")).text
        acked = metric_value(text, "pipeline_deliveries_total", consumer="billing",
                             outcome="acked")
        assert acked is not None, running.log("demo-producer")
        assert acked >= 1

    await eventually(billing_acked, timeout=60, interval=0.5)
    assert sink.received["/v1/traces"] >= 1, "no spans reached the OTLP endpoint"

    # The console serves its login page (logging in is tests/browser's).
    running.start("console")

    async def console_answers() -> None:
        assert running.processes["console"].poll() is None, running.log("console")
        try:
            response = await get(running.ports["console"], "/login")
        except httpx.HTTPError as exc:
            raise AssertionError(f"console not answering yet: {exc}") from None
        assert response.status_code == 200
        assert "Log in with your RabbitMQ user" in response.text

    await eventually(console_answers, timeout=30, interval=0.5)
    assert running.stop("console", timeout=compose.seconds(ours["console"]["stop_grace_period"])) \
        == 0, running.log("console")

    # docker compose stop: SIGTERM, then each exits 0 within its grace period.
    assert running.stop("demo-producer", timeout=15) == 0, running.log("demo-producer")
    for name in WORKERS:
        grace = compose.seconds(ours[name]["stop_grace_period"])
        assert running.stop(name, timeout=grace) == 0, running.log(name)
