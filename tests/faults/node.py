"""A throwaway RabbitMQ node for tests that break the broker.

It runs from the same installation as the shared broker but with its own
node name, ports, data directory and Erlang cookie, so nothing a fault test
does (kill -9, alarms, closing every connection) can reach 127.0.0.1:5672.
Recipe and traps: /work/shared/notes/broker-node.md.

Only processes found through OUR pid files are ever signalled; never by name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.broker import BrokerEndpoint

# The unwrapped scripts of the Debian package (the sbin wrappers switch to the
# shared node's user and cookie); PIPELINE_TEST_RABBITMQ_BIN for other layouts.
BIN = Path(os.environ.get("PIPELINE_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
BASE_PREFIX = "pipeline-node-"
START_TIMEOUT_S = 90.0


class NodeError(RuntimeError):
    """The throwaway node did not do what the test asked (start, stop, ctl)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise NodeError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for an amqps listener (the CA signs the server certificate)."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class ThrowawayBroker:
    """One RabbitMQ node in a temp dir: start, kill9, restart, ctl, destroy."""

    tls: TlsFiles | None = None
    extra_config: tuple[str, ...] = ()
    base: Path = field(default_factory=lambda: Path(
        tempfile.mkdtemp(prefix=f"{BASE_PREFIX}{os.getpid()}-")))
    amqp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)  # the management API over TLS
    pid: int | None = None

    def __post_init__(self) -> None:
        self.node = f"fault{os.getpid()}x{self.amqp_port}@localhost"
        home = self.base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (self.base / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.base / "rabbitmq.conf").write_text("\n".join(self._config()) + "\n")

    # -- configuration -------------------------------------------------
    def _config(self) -> list[str]:
        lines = [
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
            f"management.tcp.port = {self.http_port}",
            "management.tcp.ip = 127.0.0.1",
            # Queue stats once a second instead of every 5 s, for tests that read them.
            "collect_statistics_interval = 1000",
            "log.console = false",
            # PIPELINE_NODE_LOG_LEVEL=info (with PIPELINE_NODE_LOGS) when a test needs the why.
            f"log.file.level = {os.environ.get('PIPELINE_NODE_LOG_LEVEL', 'warning')}",
        ]
        if self.tls is not None:
            lines += [
                f"listeners.ssl.1 = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self.tls.ca}",
                f"ssl_options.certfile = {self.tls.cert}",
                f"ssl_options.keyfile = {self.tls.key}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
                f"management.ssl.port = {self.https_port}",
                "management.ssl.ip = 127.0.0.1",
                f"management.ssl.cacertfile = {self.tls.ca}",
                f"management.ssl.certfile = {self.tls.cert}",
                f"management.ssl.keyfile = {self.tls.key}",
            ]
        return lines + list(self.extra_config)

    @property
    def env(self) -> dict[str, str]:
        # A clean environment for the child only: a leaked RABBITMQ_* or the
        # system rabbitmq-env.conf would aim commands at the shared node.
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.http_port}/"

    @property
    def endpoint(self) -> BrokerEndpoint:
        return BrokerEndpoint(self.url, self.management_url)

    # -- lifecycle -----------------------------------------------------
    def start(self) -> None:
        """Launch detached on the data dir and wait until AMQP and HTTP answer."""
        if not (BIN / "rabbitmq-server").exists():
            raise NodeError(
                f"fault and security tests start their own RabbitMQ node and need a local "
                f"installation: no rabbitmq-server in {BIN}. Install the rabbitmq-server "
                "package or set PIPELINE_TEST_RABBITMQ_BIN to its bin/ folder"
            )
        self.pid_file.unlink(missing_ok=True)  # stale after a kill -9
        subprocess.run([str(BIN / "rabbitmq-server"), "-detached"], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        # `await_startup` fails if called before the node registered with
        # epmd; the pid file plus an open AMQP port (opened last) is reliable.
        _wait(lambda: self.pid_file.exists() and self.pid_file.read_text().strip() != "",
              START_TIMEOUT_S, f"{self.node} to write its pid file")
        self.pid = int(self.pid_file.read_text().strip())
        self.ctl("wait", str(self.pid_file), "--timeout", str(int(START_TIMEOUT_S)))
        _wait(lambda: port_open(self.amqp_port), START_TIMEOUT_S, "the AMQP port")
        _wait(lambda: port_open(self.http_port), START_TIMEOUT_S, "the management port")

    def kill9(self) -> None:
        """SIGKILL the node (no clean shutdown) and wait until it and its port are gone."""
        if self.pid is None:
            raise NodeError("the node is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        pid, self.pid = self.pid, None
        _wait(lambda: not pid_alive(pid), 30, f"beam {pid} to die")
        _wait(lambda: not port_open(self.amqp_port), 30, "the AMQP port to close")
        self.pid_file.unlink(missing_ok=True)

    def restart(self) -> None:
        """Start again on the same data directory (after ``kill9`` or ``stop``)."""
        self.start()

    def ctl(self, *args: str, timeout_s: float = 120) -> str:
        """``rabbitmqctl -q -n NODE ARGS`` with the node's environment; its stdout."""
        result = subprocess.run(
            [str(BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"rabbitmqctl {' '.join(args)} exited {result.returncode}: "
                            f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def destroy(self) -> None:
        """Kill the node by its pid and delete its directory.

        No clean ``rabbitmqctl stop`` (3-9 s here): its data is deleted anyway.
        With ``PIPELINE_NODE_LOGS=DIR`` its log directory is kept as DIR/<node>
        first (what to read when a fault or cluster test fails).
        """
        try:
            if self.pid is not None and pid_alive(self.pid):
                self.kill9()
        finally:
            self.pid = None
            keep = os.environ.get("PIPELINE_NODE_LOGS")
            if keep and (self.base / "log").is_dir():
                shutil.copytree(self.base / "log", Path(keep) / self.node, dirs_exist_ok=True)
            shutil.rmtree(self.base, ignore_errors=True)


def reap_stale_nodes() -> list[int]:
    """Kill nodes left by test sessions that died without cleaning up.

    A base dir is ``pipeline-node-<owner pid>-*``; if the owner is gone, its
    node (found only through the pid file, and only if the process's command
    line names that directory) is killed and the directory removed.
    """
    killed: list[int] = []
    for base in Path(tempfile.gettempdir()).glob(f"{BASE_PREFIX}*"):
        try:
            owner = int(base.name[len(BASE_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner == os.getpid() or pid_alive(owner):
            continue
        pid_file = base / "node.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(base).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        shutil.rmtree(base, ignore_errors=True)
    return killed


@contextlib.contextmanager
def throwaway_node(**options: Any) -> Iterator[ThrowawayBroker]:
    """Start a fresh node (after reaping any a killed run left behind); destroy it at the end."""
    reap_stale_nodes()
    node = ThrowawayBroker(**options)
    try:
        node.start()
        yield node
    finally:
        node.destroy()
