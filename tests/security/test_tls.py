"""Publisher and consumer over amqps with certificate verification on; a wrong CA fails clearly."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from pipeline import Publisher
from pipeline.connection import connect
from pipeline.errors import BrokerUnreachableError
from tests.apps.faults_ledger import ItemRecorded
from tests.faults.harness import ROOT, Stopwatch
from tests.faults.ledger import Ledger
from tests.support.waiting import eventually

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def tls_settings(settings, node, cafile):
    """amqps to the node's TLS port, verifying its certificate against ``cafile``."""
    vhost = quote(settings.vhost, safe="")
    url = f"amqps://guest:guest@127.0.0.1:{node.tls_port}/{vhost}?cafile={quote(str(cafile))}"
    return settings.model_copy(update={"amqp_url": type(settings.amqp_url)(url)})


async def test_publisher_and_consumer_work_over_tls_with_the_certificate_verified(
    secure_broker, secure_settings, tls_files, consumers, tmp_path
):
    ca = tls_files[0].ca
    settings = tls_settings(secure_settings, secure_broker, ca)
    consumer = await consumers.start(settings, tmp_path / "ledger.sqlite").consuming()
    async with await Publisher.connect(settings) as publisher:
        await publisher.publish(ItemRecorded(key="over-tls"))
    ledger = Ledger(tmp_path / "ledger.sqlite")

    async def handled() -> None:
        assert ledger.count() == 1

    await eventually(handled, timeout=10)
    ledger.close()
    assert "amqps://guest:***@" in consumer.log()  # the log shows the scheme, not the password
    # The broker agrees: the consumer's connection is TLS.
    async def consumer_connection_is_tls() -> None:
        with secure_broker.endpoint.api() as api:
            connections = api.get("/connections").json()
        ours = [c for c in connections if c.get("vhost") == secure_settings.vhost]
        assert ours, "connection not listed yet"
        assert all(c.get("ssl") for c in ours), [(c["name"], c.get("ssl")) for c in ours]

    await eventually(consumer_connection_is_tls, timeout=10, interval=0.5)


async def test_a_broker_certificate_from_the_wrong_ca_fails_at_once_with_a_clear_error(
    secure_broker, secure_settings, tls_files
):
    wrong_ca = tls_files[1]
    settings = tls_settings(secure_settings, secure_broker, wrong_ca)
    clock = Stopwatch()
    with pytest.raises(BrokerUnreachableError) as caught:
        await connect(settings, "wrong-ca")
    message = str(caught.value)
    assert "TLS handshake" in message
    assert "certificate verify failed" in message
    assert "cafile=" in message
    assert clock.seconds < settings.connect_timeout_s  # not retried: it cannot fix itself
    with pytest.raises(BrokerUnreachableError):
        await Publisher.connect(settings)


def test_no_code_of_ours_turns_certificate_verification_off():
    # aiormq verifies the server certificate unless the URL says no_verify_ssl=1.
    for path in (ROOT / "pipeline").rglob("*.py"):
        text = path.read_text()
        assert "no_verify_ssl" not in text, path
        assert "CERT_NONE" not in text, path
