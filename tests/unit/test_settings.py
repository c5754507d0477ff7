"""Settings come from PIPELINE_* variables, once, and never leak a password."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline import PipelineSettings


def test_defaults_match_the_readme(monkeypatch):
    for name in ("PIPELINE_AMQP_URL", "PIPELINE_PREFETCH", "PIPELINE_RETRY_DELAYS"):
        monkeypatch.delenv(name, raising=False)
    settings = PipelineSettings()
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.prefetch == 2
    assert str(settings.ladder) == "1s,5s,30s,5m,30m"
    assert settings.shutdown_timeout_s == 30


def test_environment_sets_every_value(monkeypatch):
    monkeypatch.setenv("PIPELINE_AMQP_URL", "amqp://app:s3cret@broker:5673/prod")
    monkeypatch.setenv("PIPELINE_PREFETCH", "50")
    monkeypatch.setenv("PIPELINE_RETRY_DELAYS", "50ms,100ms")
    settings = PipelineSettings()
    assert settings.prefetch == 50
    assert [r.label for r in settings.ladder] == ["50ms", "100ms"]
    assert settings.vhost == "prod"
    assert settings.broker_address == "broker:5673"


def test_the_password_never_appears_in_repr_or_safe_url(monkeypatch):
    monkeypatch.setenv("PIPELINE_AMQP_URL", "amqp://app:s3cret@broker:5673/prod")
    settings = PipelineSettings()
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)
    assert settings.safe_amqp_url == "amqp://app:***@broker:5673/prod"


def test_a_bad_ladder_is_refused_with_the_accepted_units(monkeypatch):
    monkeypatch.setenv("PIPELINE_RETRY_DELAYS", "1s,5 minutes")
    with pytest.raises(ValidationError, match="ms, s, m or h"):
        PipelineSettings()


def test_prefetch_must_be_positive(monkeypatch):
    monkeypatch.setenv("PIPELINE_PREFETCH", "0")
    with pytest.raises(ValidationError):
        PipelineSettings()


def test_a_cluster_is_a_comma_separated_list_of_nodes(monkeypatch):
    monkeypatch.setenv("PIPELINE_AMQP_URL",
                       "amqp://app:s3cret@rabbit-1:5672/prod, rabbit-2, rabbit-3:5673")
    settings = PipelineSettings()
    assert settings.amqp_urls == (
        "amqp://app:s3cret@rabbit-1:5672/prod",
        "amqp://app:s3cret@rabbit-2/prod",
        "amqp://app:s3cret@rabbit-3:5673/prod",
    )
    assert settings.vhost == "prod"
    assert settings.broker_address == "rabbit-1:5672,rabbit-2:5672,rabbit-3:5673"
    assert "s3cret" not in settings.safe_amqp_url
    assert "s3cret" not in repr(settings)


def test_nodes_naming_different_vhosts_are_refused_without_the_password(monkeypatch):
    monkeypatch.setenv("PIPELINE_AMQP_URL", "amqp://app:s3cret@a/prod,amqp://app:s3cret@b/test")
    with pytest.raises(ValidationError, match="different vhosts") as caught:
        PipelineSettings()
    assert "s3cret" not in str(caught.value)
