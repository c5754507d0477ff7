"""The CLI: one clear sentence per user error, documented exit codes, no password."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "hunter2-not-shown"


DEMO_APP = "consumers.registry:app"


def pipeline(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    clean["PIPELINE_APP"] = DEMO_APP
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=clean, capture_output=True, text=True,
        timeout=60,
    )


def urls(settings) -> dict[str, str]:
    return {
        "PIPELINE_AMQP_URL": settings.amqp_url.get_secret_value(),
        "PIPELINE_MANAGEMENT_URL": settings.management_url.get_secret_value(),
    }


def test_publish_prints_the_id_after_the_confirm_and_the_event_arrives(settings):
    applied = pipeline("topology", "apply", **urls(settings))
    assert applied.returncode == 0, applied.stderr

    result = pipeline(
        "publish", "orders.order.placed", "--json",
        "--data", '{"order_id": "1", "customer": "ada", "amount_cents": 100}',
        **urls(settings),
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["type"] == "orders.order.placed"
    assert len(printed["id"]) == 36

    # the same id again (a retry after a timeout) is kept, so consumers can drop it
    again = pipeline(
        "publish", "orders.order.placed", "--id", "order-1-try",
        "--data", '{"order_id": "1", "customer": "ada", "amount_cents": 100}',
        **urls(settings),
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "order-1-try"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["publish", "orders.order.placed", "--data", "{oops"], "--data is not valid JSON"),
        (["publish", "orders.order.placed", "--data", '{"order_id": ""}'], "does not fit"),
        (["publish", "orders.order.nope", "--data", "{}"], "unknown event type"),
        (["consume", "nobody"], "no consumer named 'nobody'"),
    ],
)
def test_user_errors_get_one_sentence_and_exit_2(args, expected):
    result = pipeline(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_broker_names_host_and_port_but_never_the_password():
    result = pipeline(
        "topology", "apply",
        PIPELINE_AMQP_URL=f"amqp://app:{PASSWORD}@127.0.0.1:1/",
        PIPELINE_CONNECT_TIMEOUT_S="1",
    )
    assert result.returncode == 3
    assert "127.0.0.1:1" in result.stderr
    assert "rabbitmq-server" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_wrong_credentials_say_so_without_showing_them(settings):
    url = settings.amqp_url.get_secret_value().replace("guest:guest", f"guest:{PASSWORD}")
    result = pipeline("topology", "apply", PIPELINE_AMQP_URL=url, PIPELINE_CONNECT_TIMEOUT_S="2")
    assert result.returncode == 3
    assert "refused the credentials" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_a_bad_setting_is_named():
    result = pipeline("topology", "show", PIPELINE_PREFETCH="many")
    assert result.returncode == 2
    assert "PIPELINE_PREFETCH" in result.stderr


def test_topology_show_json_lists_every_queue_and_export_writes_definitions(tmp_path):
    shown = pipeline("topology", "show", "--json")
    assert shown.returncode == 0
    names = {q["name"] for q in json.loads(shown.stdout)["queues"]}
    assert {"pipeline.billing", "pipeline.billing.retry.01.1s", "pipeline.dead-letter.store",
            "pipeline.admin-notifier"} <= names

    exported = pipeline("topology", "export", str(tmp_path / "definitions.json"))
    assert exported.returncode == 0
    definitions = json.loads((tmp_path / "definitions.json").read_text())
    assert {q["name"] for q in definitions["queues"]} == names
    assert all(q["durable"] for q in definitions["queues"])


def test_python_m_consumers_without_a_name_lists_the_consumers():
    result = subprocess.run(
        [sys.executable, "-m", "consumers"], capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")},
    )
    assert result.returncode == 2
    assert "admin-notifier, audit, billing, ledger, shipping" in result.stderr


def test_a_worker_started_without_an_app_says_what_to_set():
    result = pipeline("consume", "billing", PIPELINE_APP="")

    assert result.returncode == 2
    assert "PIPELINE_APP is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_log_level_that_does_not_exist_is_a_usage_error_not_a_traceback():
    from_flag = pipeline("--log-level", "verbose", "topology", "show")
    from_env = pipeline("topology", "show", PIPELINE_LOG_LEVEL="verbose")

    assert from_flag.returncode == 2
    assert "invalid choice: 'VERBOSE'" in from_flag.stderr
    assert from_env.returncode == 2
    assert "PIPELINE_LOG_LEVEL" in from_env.stderr
    assert "Traceback" not in from_flag.stderr + from_env.stderr


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = pipeline("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"pipeline {version('rabbit-pipeline')}"
