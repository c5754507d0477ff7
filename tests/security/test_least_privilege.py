"""`pipeline users apply` gives each role only what it needs, and the broker enforces it."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from pydantic import SecretStr

from consumers.orders_events import OrderPlaced
from pipeline import Publisher
from pipeline.exits import ExitCode
from tests.security.cli import run_cli
from tests.security.conftest import as_user
from tests.support.runtime import drain, queue_state
from tests.support.waiting import eventually
from topology import naming

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ROLES = ("publisher", "billing", "shipping", "audit", "admin-notifier", "ledger", "operator",
         "deployer")


@pytest.fixture
def passwords() -> dict[str, str]:
    return {role: f"pw-{role}-{uuid.uuid4().hex}" for role in ROLES}


@pytest.fixture
async def users(secure_settings, passwords):
    """Users applied with the CLI, and the topology applied by the deployer with the CLI."""
    result = run_cli(secure_settings, "users", "apply",
                     PIPELINE_USER_PASSWORDS=json.dumps(passwords))
    assert result.returncode == 0, result.stderr
    for password in passwords.values():
        assert password not in result.stdout + result.stderr
    assert "pipeline-billing" in result.stdout
    deployer = as_user(secure_settings, "pipeline-deployer", passwords["deployer"])
    applied = run_cli(deployer, "topology", "apply")
    assert applied.returncode == 0, applied.stderr + applied.stdout
    return {role: as_user(secure_settings, f"pipeline-{role}", password)
            for role, password in passwords.items()}


async def refused(settings, action) -> bool:
    """True if the broker answers ``action(channel)`` with ACCESS_REFUSED (403)."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await action(channel)
        except ChannelAccessRefused:
            return True
    return False


def get_from(queue: str):
    async def action(channel):
        await (await channel.get_queue(queue, ensure=False)).get(fail=False, no_ack=False)
    return action


def publish_to(exchange: str, routing_key: str = "x"):
    async def action(channel):
        target = (channel.default_exchange if exchange == "" else
                  await channel.get_exchange(exchange, ensure=False))
        await target.publish(aio_pika.Message(b"{}"), routing_key)
    return action


def delete_queue(queue: str):
    async def action(channel):
        await channel.queue_delete(queue)
    return action


def delete_exchange(exchange: str):
    async def action(channel):
        await channel.exchange_delete(exchange)
    return action


def declare(queue: str):
    async def action(channel):
        await channel.declare_queue(queue, durable=True)
    return action


async def test_a_publisher_can_publish_events_but_not_read_or_declare_anything(users):
    publisher_settings = users["publisher"]
    async with await Publisher.connect(publisher_settings) as publisher:
        await publisher.publish(OrderPlaced(order_id="o-1", customer="c", amount_cents=1))
    for queue in (naming.consumer_queue("billing"), naming.consumer_queue("shipping"),
                  naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_QUEUE):
        assert await refused(publisher_settings, get_from(queue)), queue
    assert await refused(publisher_settings, declare("pipeline.sneaky"))
    assert await refused(publisher_settings, publish_to("", naming.consumer_queue("billing")))
    assert await refused(publisher_settings, publish_to(naming.DEAD_LETTER_EXCHANGE))


def start_billing(consumers, settings):
    return consumers.start(settings, None, worker="billing", app="consumers.registry:app")


async def test_a_consumer_runs_with_its_user_but_cannot_read_another_consumers_queue(
    users, secure_settings, consumers
):
    billing_settings = users["billing"]
    # Its worker declares what it needs on start, consumes and handles events...
    billing = await start_billing(consumers, billing_settings).consuming()
    async with await Publisher.connect(users["publisher"]) as publisher:
        await publisher.publish(OrderPlaced(order_id="o-2", customer="c", amount_cents=1))

    async def billing_handled() -> None:
        assert "charged 1 cents for order o-2" in billing.log()

    await eventually(billing_handled, timeout=10)
    assert "ACCESS_REFUSED" not in billing.log()
    # ...but it cannot read another consumer's queue or the stores, nor publish events.
    for queue in (naming.consumer_queue("shipping"), naming.consumer_queue("audit"),
                  naming.retry_queue("shipping", 1, secure_settings.ladder[0].label),
                  naming.DEAD_LETTER_STORE, naming.ADMIN_NOTIFIER_PARKED):
        assert await refused(billing_settings, get_from(queue)), queue
    assert await refused(billing_settings, publish_to(naming.EVENTS_EXCHANGE, "orders.x.y"))
    assert await refused(billing_settings, declare("pipeline.shipping.extra"))
    # ...nor read the notifier's queue, nor delete the store, an exchange or another
    # consumer's queue (it declares nothing: the deployer applied the topology)
    assert await refused(billing_settings, get_from(naming.ADMIN_NOTIFIER_QUEUE))
    for queue in (naming.DEAD_LETTER_STORE, naming.consumer_queue("shipping"),
                  naming.consumer_queue("billing")):
        assert await refused(billing_settings, delete_queue(queue)), queue
    for exchange in (naming.EVENTS_EXCHANGE, naming.DEAD_LETTER_EXCHANGE):
        assert await refused(billing_settings, delete_exchange(exchange)), exchange
    await queue_state(secure_settings, naming.DEAD_LETTER_STORE)  # still there (passive)


async def test_the_operator_can_read_and_replay_the_store_but_not_consumer_queues(
    users, secure_settings, consumers
):
    operator_settings = users["operator"]
    # Given a dead-lettered event (an order billing refuses for good)
    billing = await start_billing(consumers, users["billing"]).consuming()
    async with await Publisher.connect(users["publisher"]) as publisher:
        await publisher.publish(OrderPlaced(order_id="o-3", customer="c", amount_cents=1,
                                            payment_method="expired-card"))

    async def stored() -> None:
        ready, _ = await queue_state(secure_settings, naming.DEAD_LETTER_STORE)
        assert ready == 1

    await eventually(stored, timeout=10)
    # Stopped so the replayed event stays in the queue for us to see: gracefully, so the
    # original's ack (sent after its copy was confirmed, so after the store counted it)
    # reaches the broker; a kill -9 in that moment returns the original to billing's
    # queue too (at-least-once: the duplicate a crash there may leave).
    billing.terminate()
    assert await billing.exit_code(60) == 0, billing.log()[-2000:]
    # When the operator lists and replays it with the CLI, both work
    listed = run_cli(operator_settings, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert "o-3" in listed.stdout or "permanent-error" in listed.stdout
    replayed = run_cli(operator_settings, "dead-letters", "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr + replayed.stdout
    assert len(await drain(secure_settings, naming.consumer_queue("billing"), expect=1)) == 1
    # ...but the operator cannot consume a consumer's queue or publish new events
    assert await refused(operator_settings, get_from(naming.consumer_queue("billing")))
    assert await refused(operator_settings, publish_to(naming.EVENTS_EXCHANGE, "orders.x.y"))
    assert await refused(operator_settings, declare("pipeline.operator-queue"))


async def test_applying_users_without_passwords_names_the_missing_roles_only(secure_settings):
    result = run_cli(secure_settings, "users", "apply",
                     PIPELINE_USER_PASSWORDS=json.dumps({"publisher": "only-this-one-secret"}))
    assert result.returncode == 2
    assert "billing" in result.stderr
    assert "operator" in result.stderr
    assert "only-this-one-secret" not in result.stdout + result.stderr


def test_users_show_prints_the_permission_patterns_without_a_broker():
    from pipeline import PipelineSettings

    result = run_cli(PipelineSettings(), "users", "show", "--json")
    assert result.returncode == 0, result.stderr
    roles = {entry["role"]: entry for entry in json.loads(result.stdout)}
    assert roles["publisher"]["write"] == (
        r"^(pipeline\.delay|pipeline\.events|pipeline\.events\.express)$")
    assert roles["publisher"]["read"] == "^$"
    assert "pipeline\\.shipping" not in roles["billing"]["read"]


async def test_a_consumer_runs_the_drift_check_as_its_own_user_and_fails_closed(
    users, passwords, secure_broker, secure_settings, consumers
):
    vhost = quote(secure_settings.vhost, safe="")
    queue = quote(naming.consumer_queue("billing"), safe="")
    # Given a policy that lowers billing's delivery limit, shown on billing's queue
    with secure_broker.endpoint.api() as api:
        api.put(f"/policies/{vhost}/tight-limit", json={
            "pattern": r"^pipeline\.billing$", "apply-to": "queues", "priority": 5,
            "definition": {"delivery-limit": 1}}).raise_for_status()

        async def shown() -> None:
            assert api.get(f"/queues/{vhost}/{queue}").json().get("policy") == "tight-limit"

        await eventually(shown, timeout=20, interval=0.5)
    # When billing starts with its own user (management tag, no policy listing needed),
    # the check reads the policy from its queue and the consumer refuses: exit 4
    billing = start_billing(consumers, users["billing"])
    assert await billing.exit_code(60) == ExitCode.TOPOLOGY
    assert "tight-limit" in billing.log()
    assert "delivery-limit" in billing.log()
    # And when its user may not use the management API at all, it refuses too, naming
    # the setting that would let it start with a warning instead
    with secure_broker.endpoint.api() as api:
        api.delete(f"/policies/{vhost}/tight-limit").raise_for_status()
        api.put("/users/pipeline-billing", json={
            "password": passwords["billing"], "tags": ""}).raise_for_status()
    untagged = start_billing(consumers, users["billing"])
    assert await untagged.exit_code(60) == ExitCode.TOPOLOGY
    refusal = [line for line in untagged.log().splitlines() if "refusing to start" in line]
    assert len(refusal) == 1, untagged.log()[-2000:]
    assert "cannot check the broker's policies for drift" in refusal[0]
    assert "PIPELINE_DRIFT_CHECK=warn" in refusal[0]
    assert passwords["billing"] not in untagged.log()


def test_users_apply_refuses_to_send_passwords_over_plain_http_to_another_host(
    secure_settings, passwords
):
    remote = secure_settings.model_copy(update={
        "management_url": SecretStr("http://guest:guest@192.0.2.10:15672/")})
    result = run_cli(remote, "users", "apply", PIPELINE_USER_PASSWORDS=json.dumps(passwords),
                     timeout_s=30)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert "refusing to send passwords over plain http to http://192.0.2.10:15672" in (
        result.stderr)
    assert "--ca-file" in result.stderr
    for password in passwords.values():
        assert password not in result.stdout + result.stderr


def test_users_apply_over_https_verifies_the_api_against_the_given_ca(
    secure_broker, secure_settings, passwords, tls_files
):
    https = secure_settings.model_copy(update={"management_url": SecretStr(
        f"https://guest:guest@localhost:{secure_broker.https_port}/")})
    env = {"PIPELINE_USER_PASSWORDS": json.dumps(passwords)}
    # Without the CA that signed the API's certificate, nothing is sent
    unverified = run_cli(https, "users", "apply", **env)
    assert unverified.returncode != 0
    assert "users applied" not in unverified.stdout
    # With it, the users are applied over TLS
    verified = run_cli(https, "users", "apply", "--ca-file", str(tls_files[0].ca), **env)
    assert verified.returncode == 0, verified.stderr
    assert "users applied" in verified.stdout
    for password in passwords.values():
        assert password not in verified.stdout + verified.stderr
