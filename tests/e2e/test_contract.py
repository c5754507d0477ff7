"""The contract: `pipeline asyncapi` validated by the official parser, `pipeline events schema`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from consumers.orders_events import OrderPlaced
from pipeline import envelope
from tests.support.asyncapi import NoNodeError, problems, validate

pytestmark = pytest.mark.e2e

REPOSITORY_APP = "consumers.registry:app"


def pipeline(*args: str, app: str = REPOSITORY_APP) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env["PIPELINE_APP"] = app
    return subprocess.run([sys.executable, "-m", "pipeline", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def checked(path: Path) -> dict:
    try:
        parsed, diagnostics = validate(path)
    except NoNodeError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert parsed, diagnostics
    assert problems(diagnostics) == []
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(
        path.read_text())


def test_the_asyncapi_document_of_the_demo_app_passes_the_official_parser(tmp_path):
    out = tmp_path / "asyncapi.json"
    result = pipeline("asyncapi", "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stderr

    document = checked(out)

    assert document["asyncapi"] == "3.0.0"
    assert "written to" in result.stdout
    operations = document["operations"]
    assert operations["billing.receive"]["action"] == "receive"
    assert operations["publish.orders.order.placed"]["action"] == "send"
    # The retry ladder and the dead-letter path are documented as channels and operations.
    assert "pipeline.billing.retry.05.30m" in document["channels"]
    assert operations["shipping.retry.5s"]["channel"] == {
        "$ref": "#/channels/pipeline.shipping.retry.02.5s"}
    assert "pipeline.dead-letter.store" in document["channels"]
    placed = document["components"]["messages"]["orders.order.placed"]
    data = placed["payload"]["allOf"][1]["properties"]["data"]
    schema = document["components"]["schemas"][data["$ref"].rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"order_id", "customer", "amount_cents"}
    assert "amqp://" not in out.read_text()
    assert "guest" not in out.read_text()


def test_nested_models_and_producer_only_events_survive_in_yaml(tmp_path):
    result = pipeline("asyncapi", app="tests.apps.contract:app")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "asyncapi.yaml"
    out.write_text(result.stdout)

    document = checked(out)

    schemas = document["components"]["schemas"]
    assert {"Money", "Currency", "InvoiceIssued", "InvoicePaid", "LedgerClosed"} <= set(schemas)
    assert schemas["InvoiceIssued"]["properties"]["total"] == {
        "$ref": "#/components/schemas/Money"}
    assert "publish.accounting.ledger.closed" in document["operations"]
    # The consumer's own ladder, not the deployment's, is what its rungs show.
    rungs = sorted(name for name in document["channels"] if ".retry." in name)
    assert rungs == ["pipeline.books.retry.01.10s", "pipeline.books.retry.02.1m"]
    books = document["operations"]["books.receive"]["messages"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in books] == [
        "billing.invoice.issued", "billing.invoice.paid"]


@pytest.mark.parametrize(("break_it", "where"), [
    (lambda d: d["operations"]["billing.receive"].update(action="subscribe"),  # 2.x wording
     "operations/billing.receive/action"),
    (lambda d: d["channels"]["pipeline.billing"]["messages"].update(
        {"orders.order.placed": {"$ref": "#/components/messages/no-such-message"}}),
     "/$ref"),
])
def test_the_validator_used_here_does_report_a_broken_document(tmp_path, break_it, where):
    # Control: the parser must refuse what AsyncAPI 3.0 does not allow, or
    # the tests above would prove nothing.
    document = json.loads(pipeline("asyncapi", "--format", "json").stdout)
    break_it(document)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))

    _, diagnostics = validate(broken)

    errors = [d for d in diagnostics if d.severity == "error"]
    assert any(where in d.path for d in errors), errors


def test_events_schema_prints_a_json_schema_that_accepts_real_data_and_refuses_bad():
    result = pipeline("events", "schema", "orders.order.placed")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)

    jsonschema.validate({"order_id": "1", "customer": "ada", "amount_cents": 5}, schema)
    with pytest.raises(jsonschema.ValidationError, match="amount_cents"):
        jsonschema.validate({"order_id": "1", "customer": "ada"}, schema)


def test_events_schema_with_envelope_accepts_the_body_our_publisher_sends():
    result = pipeline("events", "schema", "billing.invoice.issued", "--envelope",
                      app="tests.apps.contract:app")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    from tests.apps.contract import Currency, InvoiceIssued, Money

    event = InvoiceIssued(invoice_id="7", total=Money(amount_cents=5, currency=Currency.EUR))
    body = json.loads(envelope.encode(envelope.wrap(event, "tests")))
    jsonschema.validate(body, schema)
    body["data"]["total"]["currency"] = "XXX"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema)
    other = json.loads(envelope.encode(envelope.wrap(
        OrderPlaced(order_id="1", customer="a", amount_cents=1), "tests")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(other, schema)


def test_an_unknown_event_type_is_one_sentence_and_exit_2():
    result = pipeline("events", "schema", "orders.order.nope")
    assert result.returncode == 2
    assert "unknown event type 'orders.order.nope'" in result.stderr
    assert "orders.order.placed" in result.stderr
