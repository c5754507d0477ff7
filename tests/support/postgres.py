"""A throwaway PostgreSQL server for the ledger's tests: own port, own data dir, stopped after.

Never the server on 5432: ``initdb`` a fresh cluster under a temporary
directory, ``pg_ctl start`` it on a free port (unix socket in the same
directory), hand out one database per test, ``pg_ctl stop`` in a finally.
As root, the PostgreSQL binaries refuse to run, so they run as ``postgres``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class NoPostgresError(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise NoPostgresError(
        "PostgreSQL's initdb is not installed: `apt-get install -y postgresql` "
        "(.ci/run does this) to run the ledger's PostgreSQL tests"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayPostgres:
    base: Path
    port: int
    bin_dir: Path

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-l",
                  str(self.base / "server.log"), "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = "ledger_" + uuid.uuid4().hex[:12]
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Start a fresh server on a free port; stop it and remove its files afterwards."""
    bin_dir = _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    base.chmod(0o777)
    server = ThrowawayPostgres(base, _free_port(), bin_dir)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    try:
        server._run("initdb", "-D", str(server.data), "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8")
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
