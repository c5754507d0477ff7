"""The redaction step: built-in patterns, the deployment's hook, the size cap."""

from __future__ import annotations

import logging
import random
import sys

import pytest

from pipeline.consume import redaction
from pipeline.consume.redaction import HOOK_FAILED, Redactor, load_hook
from pipeline.errors import ConfigurationError
from pipeline.logs import RedactionFilter


def hide_order_numbers(text: str) -> str:
    """A deployment's own hook (PIPELINE_REDACTION_HOOK=tests.unit.test_redaction:...)."""
    return text.replace("ORDER-4242", "ORDER-****")


def broken_hook(text: str) -> str:
    raise RuntimeError(f"cannot handle {text}")


@pytest.mark.parametrize(("text", "secret"), [
    ("connect amqp://billing:s3cret-pw@rabbit:5672/prod failed", "s3cret-pw"),
    ("postgresql+asyncpg://app:p%40ss@db/ledger refused", "p%40ss"),
    ("401 for Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig_-x", "eyJhbGciOi"),
    ("headers={'Authorization': 'Basic Z3Vlc3Q6Z3Vlc3Q='}", "Z3Vlc3Q6Z3Vlc3Q"),
    ("GET /charge?card=1&api_key=AKIA1234&x=1", "AKIA1234"),
    ("config {'password': 'hunter2', 'user': 'ada'}", "hunter2"),
])
def test_credentials_in_error_text_are_masked(text, secret):
    redacted = Redactor()(text)
    assert secret not in redacted
    assert "***" in redacted


def test_text_without_secrets_is_left_alone():
    text = "KeyError: 'amount' in https://example.com/orders/1 (order 42)"
    assert Redactor()(text) == text


def test_the_deployments_hook_runs_after_the_built_in_step_and_the_text_is_capped():
    redact = Redactor(load_hook("tests.unit.test_redaction:hide_order_numbers"))
    text = "ORDER-4242 failed: amqp://u:pw@h/ " + "x" * 5000
    redacted = redact(text, 256)
    assert len(redacted.encode()) <= 256
    assert redact("ORDER-4242 at amqp://u:pw@h/") == "ORDER-**** at amqp://u:***@h/"


def test_a_failing_hook_hides_the_text_instead_of_leaking_it(caplog):
    redact = Redactor(broken_hook)
    assert redact("token=abc secret order") == HOOK_FAILED
    assert redact("again") == HOOK_FAILED
    assert [r.getMessage() for r in caplog.records if "redaction hook" in r.getMessage()] == [
        "the redaction hook (PIPELINE_REDACTION_HOOK) raised RuntimeError; error text is "
        "replaced by a placeholder until it is fixed"]


@pytest.mark.parametrize("path", ["nomodule", "tests.unit.test_redaction:missing",
                                  "no.such.module:f"])
def test_a_hook_that_cannot_load_is_a_configuration_error(path):
    with pytest.raises(ConfigurationError, match="PIPELINE_REDACTION_HOOK"):
        load_hook(path)


def test_log_lines_and_their_tracebacks_pass_the_redaction_step():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1,
                               "could not reach %s", ("amqp://u:pw@host/",), None)
    try:
        raise ConnectionError("Authorization: Bearer abc.def.ghi refused")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    RedactionFilter(Redactor()).filter(record)
    line = logging.Formatter().format(record)
    assert "amqp://u:***@host/" in line
    assert "ConnectionError: Authorization: Bearer *** refused" in line
    assert "pw@" not in line
    assert "abc.def" not in line


def _every_pattern(text: str) -> str:
    """The built-in step without skipping: each pattern over the whole text."""
    text = redaction._URL_PASSWORD.sub(lambda m: m["head"] + redaction.MASK + "@", text)
    text = redaction._AUTH_SCHEME.sub(lambda m: m["head"] + m["sep"] + redaction.MASK, text)
    return redaction._KEY_VALUE.sub(lambda m: m["head"] + redaction.MASK, text)


@pytest.mark.parametrize("text", [
    "plain text, no secret at all: KeyError 'amount'",
    "AMQP://U:PW@HOST/ and PASSWORD=x and Authorization: BEARER abc",
    "Bearer token=abc then api-KEY: k1 and Access_Token='t'",
    "\u017fecret=hidden and pa\u017fsword: p and Bas\u0131c x",  # re folds, lower() not
    "the Kelvin sign: to\u212aen=abc",
    'File "/srv/app/passwords.py", line 3, in rotate\n    db.login(password=PW)\n',
    "basic\nabc secret: s",
])
def test_skipping_patterns_whose_words_are_absent_never_changes_the_result(text):
    assert redaction.redact_builtin(text) == _every_pattern(text)


def test_skipping_patterns_agrees_with_every_pattern_on_random_text():
    pieces = ["amqp://", "u:", "pw@", "Bearer ", "BASIC\t", "tokEN", "=", ": ", "'", "api",
              "_key", "access-", "passwd", "\u017f", "\u0131", "\u212a", " ", "\n", "x", "/",
              "@", "secret"]
    rng = random.Random(19)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert redaction.redact_builtin(text) == _every_pattern(text), text
