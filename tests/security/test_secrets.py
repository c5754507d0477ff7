"""No password in any log line, error, CLI or status output; JSON only, never pickle."""

from __future__ import annotations

import json
import logging
import pickle
import re
import signal
import uuid

import aio_pika
import pytest

from consumers.orders_events import OrderPlaced
from pipeline import Publisher
from pipeline.connection import connect
from pipeline.errors import BrokerUnreachableError, PublishError
from tests.apps.faults_ledger import CONSUMER, build
from tests.faults.harness import ROOT, declare, take_dead_letters
from tests.security.cli import run_cli
from tests.security.conftest import as_user
from tests.support.runtime import running
from tests.support.waiting import eventually
from topology import apply_topology

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture
def secret() -> str:
    # URL-safe, so a percent-encoded copy would look the same and be caught too.
    return f"S3cr3t-{uuid.uuid4().hex}"


@pytest.fixture
def leaky_settings(secure_broker, secure_settings, secret):
    """An administrator whose password is ``secret``, on the test vhost."""
    user = f"admin-{uuid.uuid4().hex[:8]}"
    with secure_broker.endpoint.api() as api:
        api.put(f"/users/{user}", json={"password": secret, "tags": "administrator"},
                ).raise_for_status()
        api.put(f"/permissions/{secure_settings.vhost}/{user}",
                json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    try:
        yield as_user(secure_settings, user, secret)
    finally:
        with secure_broker.endpoint.api() as api:
            api.delete(f"/users/{user}")


async def test_no_cli_command_or_consumer_log_shows_a_password(
    leaky_settings, secret, consumers, secure_broker
):
    # Given every way the CLI and a consumer speak, with secrets in both URLs
    user_secrets = {role: f"{secret}-{role}" for role in
                    ("publisher", "billing", "shipping", "audit", "admin-notifier", "operator")}
    outputs = [
        run_cli(leaky_settings, "topology", "apply"),
        run_cli(leaky_settings, "users", "apply",
                PIPELINE_USER_PASSWORDS=json.dumps(user_secrets)),
        run_cli(leaky_settings, "users", "show"),
        run_cli(leaky_settings, "publish", "orders.order.placed", "--data",
                '{"order_id": "o-1", "customer": "c", "amount_cents": 5}'),
        run_cli(leaky_settings, "status"),
        run_cli(leaky_settings, "dead-letters", "list"),
    ]
    # ...including the error paths: a wrong password, a closed port, bad settings
    wrong = as_user(leaky_settings, leaky_settings.amqp_url.get_secret_value()
                    .split("//", 1)[1].split(":", 1)[0], secret + "-wrong")
    outputs.append(run_cli(wrong, "topology", "apply"))
    outputs.append(run_cli(wrong, "status"))
    closed = leaky_settings.amqp_url.get_secret_value().replace(
        f":{secure_broker.amqp_port}/", ":1/")
    outputs.append(run_cli(leaky_settings, "topology", "apply", PIPELINE_AMQP_URL=closed,
                           PIPELINE_CONNECT_TIMEOUT_S="1"))
    outputs.append(run_cli(leaky_settings, "topology", "apply", PIPELINE_PREFETCH="zero"))
    consumer = await consumers.start(leaky_settings, None, worker="billing",
                                     app="consumers.registry:app").consuming()
    consumer.popen.send_signal(signal.SIGTERM)
    await consumer.exit_code()

    # Then the secrets never appear, in plain or in any encoding we know of
    text = "\n".join(o.stdout + o.stderr for o in outputs) + consumer.log()
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[6].returncode == 3, outputs[6].stderr  # refused, and said so
    assert "***" in text  # URLs are shown, redacted
    for leaked in (secret, *user_secrets.values()):
        assert leaked not in text
    assert not re.search(re.escape(secret[:16]), text)


def message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # aio-pika's OneShotCallback.__repr__ can raise after it fired
        return f"{record.msg} {[a for a in record.args if isinstance(a, str | int)]}"


async def test_no_log_line_or_error_in_process_shows_the_password(
    leaky_settings, secret, caplog, secure_broker, tmp_path
):
    caplog.set_level(logging.DEBUG)
    errors: list[str] = [str(leaky_settings), repr(leaky_settings)]
    connection = await connect(leaky_settings, "secrets.setup")
    app = build(tmp_path / "ledger.sqlite")
    await apply_topology(connection, app.topology(leaky_settings.ladder, 20))
    await connection.close()
    async with await Publisher.connect(leaky_settings) as publisher:
        await publisher.publish(OrderPlaced(order_id="o", customer="c", amount_cents=1),
                                routing_key="faults.item.recorded")
        # A forced close makes the reconnect lines log (they name the broker, not the URL).
        secure_broker.ctl("close_all_connections", "--global", "secrets test")

        async def publishes_again() -> None:
            try:
                await publisher.publish(OrderPlaced(order_id="o", customer="c", amount_cents=1),
                                        routing_key="faults.item.recorded")
            except PublishError as exc:
                errors.append(str(exc))
                raise AssertionError("not reconnected yet") from None

        await eventually(publishes_again, timeout=15, interval=0.3)
    wrong = as_user(leaky_settings, "nobody", secret + "-wrong")
    with pytest.raises(BrokerUnreachableError) as caught:
        await connect(wrong, "secrets.wrong")
    errors.append(str(caught.value))
    text = "\n".join([*errors, *(message_of(r) for r in caplog.records),
                      *(str(r.exc_info[1]) for r in caplog.records if r.exc_info)])
    assert "restored" in text
    assert secret not in text


async def test_a_pickled_body_is_dead_lettered_as_invalid_and_never_unpickled(
    secure_settings, tmp_path
):
    ledger_path = tmp_path / "ledger.sqlite"
    await declare(secure_settings, ledger_path)
    app = build(ledger_path)

    class Boom:  # unpickling this would run code
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    async with running(secure_settings, app, app.consumer(CONSUMER)):
        connection = await aio_pika.connect(secure_settings.amqp_url.get_secret_value())
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("pipeline.events", ensure=False)
            await exchange.publish(aio_pika.Message(
                pickle.dumps(Boom()), content_type="application/python-pickle",
                message_id="pickled"), "faults.item.recorded")

        async def dead_lettered() -> list:
            stored = await take_dead_letters(secure_settings)
            assert stored
            return stored

        stored = await eventually(dead_lettered, timeout=10)
    assert stored[0].headers["pipeline-dead-letter-reason"] == "invalid-message"


def test_the_code_never_imports_pickle_or_marshal():
    for package in ("pipeline", "topology", "consumers"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            assert not re.search(r"^\s*(import|from)\s+(pickle|marshal|shelve|dill)\b",
                                 source, re.M), path
