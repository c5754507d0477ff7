"""Fixtures for security tests: a throwaway node with TLS, a message size limit and users.

The node is our own (tests/faults/node.py), so creating users, setting
limits and serving a test certificate never touch the shared broker.
Certificates are made here with the ``openssl`` command line: a CA that
signs the server certificate (valid for 127.0.0.1 and localhost), and a
second, unrelated CA for the "wrong CA" test.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from pipeline import PipelineSettings
from tests.conftest import make_settings
from tests.faults.harness import ConsumerFactory, consumers  # noqa: F401  (a fixture)
from tests.faults.node import ThrowawayBroker, TlsFiles, throwaway_node
from tests.support.broker import vhost_name

# The node runs with the max_message_size line of the shipped deploy/rabbitmq.conf,
# so the message-size test proves the value we ship is accepted and enforced.
_SHIPPED = (Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq.conf").read_text()
BROKER_MAX_MESSAGE_BYTES = int(
    re.search(r"^max_message_size\s*=\s*(\d+)\s*$", _SHIPPED, re.MULTILINE).group(1))  # type: ignore[union-attr]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA (EC P-256: fast to generate): (certificate, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key.name, "-out", cert.name, "-days", "2",
             "-subj", f"/CN={name}", cwd=directory)
    return cert, key


def make_tls_files(directory: Path) -> tuple[TlsFiles, Path]:
    """Server files signed by a test CA, and the certificate of an unrelated CA."""
    ca, ca_key = make_ca(directory, "pipeline-test-ca")
    wrong_ca, _ = make_ca(directory, "some-other-ca")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=directory)
    return TlsFiles(ca, directory / "server.pem", directory / "server.key"), wrong_ca


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def secure_broker(tls_files: tuple[TlsFiles, Path]) -> Iterator[ThrowawayBroker]:
    """Our own node: amqp and amqps listeners, max_message_size set; destroyed at the end."""
    with throwaway_node(
        tls=tls_files[0], extra_config=(f"max_message_size = {BROKER_MAX_MESSAGE_BYTES}",)
    ) as node:
        yield node


@pytest.fixture
def secure_vhost(secure_broker: ThrowawayBroker, request: pytest.FixtureRequest,
                 ) -> Iterator[str]:
    name = vhost_name(request.node.nodeid)
    secure_broker.endpoint.create_vhost(name)
    try:
        yield name
    finally:
        secure_broker.endpoint.delete_vhost(name)


@pytest.fixture
def secure_settings(secure_broker: ThrowawayBroker, secure_vhost: str) -> PipelineSettings:
    """guest on a fresh vhost of the secure node (plain AMQP)."""
    return make_settings(secure_broker.endpoint, secure_vhost, connect_timeout_s=10.0)


def as_user(settings: PipelineSettings, user: str, password: str) -> PipelineSettings:
    """The same vhost and node, logged in as ``user`` (AMQP and management API)."""
    vhost = quote(settings.vhost, safe="")
    amqp = settings.amqp_url.get_secret_value().split("@", 1)[1].split("/", 1)[0]
    http = settings.management_url.get_secret_value().split("@", 1)[1]
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return settings.model_copy(update={
        "amqp_url": SecretStr(f"amqp://{credentials}@{amqp}/{vhost}"),
        "management_url": SecretStr(f"http://{credentials}@{http}"),
    })
