"""All configuration, read once from ``PIPELINE_*`` environment variables.

Build a ``PipelineSettings()`` at the edge of a process (``__main__``, the
CLI, a test fixture) and pass it down; nothing else reads the environment.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from topology import DEFAULT_LADDER, RetryLadder


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class PipelineSettings(BaseSettings):
    """Settings for publishers, consumers and the CLI (env prefix ``PIPELINE_``)."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_", frozen=True, extra="ignore")

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="AMQP URL of the broker, vhost included",
    )
    management_url: SecretStr = Field(
        SecretStr("http://guest:guest@127.0.0.1:15672/"),
        description="RabbitMQ management HTTP API (status, drift checks, UI link)",
    )
    service_name: str = Field("pipeline", description="CloudEvents source and connection name")
    app: str = Field(
        "consumers.registry:app", description="module:attribute of the consumer registry"
    )
    prefetch: int = Field(2, ge=1, le=65535, description="default unacked deliveries per consumer")
    retry_delays: str = Field(DEFAULT_LADDER, description="the retry ladder, e.g. 1s,5s,30s,5m,30m")
    delivery_limit: int = Field(
        20, ge=1, description="deliveries before a crash-looping message is dead-lettered"
    )
    confirm_timeout_s: float = Field(10.0, gt=0, description="wait for a publisher confirm")
    connect_timeout_s: float = Field(30.0, gt=0, description="keep retrying the first connect")
    reconnect_interval_s: float = Field(
        1.0, gt=0, description="first wait before reconnecting; grows with the outage to 15s"
    )
    shutdown_timeout_s: float = Field(30.0, ge=0, description="drain in-flight handlers on stop")
    max_message_bytes: int = Field(1_048_576, ge=1024, description="refuse bigger events")
    error_header_bytes: int = Field(2048, ge=128, description="cap for error text in headers")
    traceback_header_bytes: int = Field(8192, ge=256, description="cap for traceback headers")
    # `pipeline users apply`: role -> password, as JSON (docs/reliability.md).
    user_passwords: dict[str, SecretStr] = Field(
        default_factory=dict, description='{"publisher": "...", "billing": "..."}'
    )
    # Off by default so several local consumers never fight over one port;
    # the image sets 8000 (docs/operations.md).
    health_port: int = Field(
        0, ge=0, le=65535, description="/healthz, /readyz, /metrics port; 0 disables"
    )
    health_host: str = Field("127.0.0.1", description="address the health server binds")
    # Tracing exporters come from the standard OTEL_* variables (docs/tracing.md);
    # this file is ours: spans as JSON lines, for the demo and tests.
    trace_file: Path | None = Field(None, description="append finished spans here as JSON lines")
    # The admin notifier (docs/dead-letters.md): where notices go and how they are grouped.
    notifier_sinks: str = Field("log", description="comma-separated: log, webhook, email")
    notifier_webhook_url: SecretStr | None = Field(None, description="POST target (Slack-style)")
    notifier_smtp_host: str = Field("localhost", description="SMTP server for the email sink")
    notifier_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port")
    notifier_smtp_starttls: bool = Field(False, description="upgrade the SMTP session with TLS")
    notifier_smtp_user: str | None = Field(None, description="SMTP login, if the server wants one")
    notifier_smtp_password: SecretStr | None = Field(None, description="SMTP password")
    notifier_smtp_from: str = Field("pipeline@localhost", description="sender of notice mails")
    notifier_smtp_to: str = Field("", description="comma-separated recipients of notice mails")
    notifier_group_window_s: float = Field(60.0, gt=0, description="group equal failures this long")
    notifier_prefetch: int = Field(1000, ge=1, le=65535, description="dead letters held per window")
    notifier_send_attempts: int = Field(4, ge=1, description="tries per sink before parking")

    @field_validator("retry_delays")
    @classmethod
    def _ladder_is_readable(cls, value: str) -> str:
        RetryLadder.parse(value)
        return value

    @cached_property
    def ladder(self) -> RetryLadder:
        return RetryLadder.parse(self.retry_delays)

    @property
    def safe_amqp_url(self) -> str:
        return redact_url(self.amqp_url.get_secret_value())

    @property
    def broker_address(self) -> str:
        parts = urlsplit(self.amqp_url.get_secret_value())
        return f"{parts.hostname}:{parts.port or 5672}"

    @property
    def vhost(self) -> str:
        from urllib.parse import unquote

        path = urlsplit(self.amqp_url.get_secret_value()).path
        return unquote(path[1:]) if len(path) > 1 else "/"
