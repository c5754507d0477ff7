"""All configuration, read once from ``PIPELINE_*`` environment variables.

Build a ``PipelineSettings()`` at the edge of a process (``__main__``, the
CLI, a test fixture) and pass it down; nothing else reads the environment.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.durations import parse_age
from pipeline.node_list import address, split_urls
from topology import DEFAULT_LADDER, DEFAULT_REPLICAS, RetryLadder

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)


def describe_invalid_settings(error: ValidationError) -> str:
    """One sentence naming the first invalid ``PIPELINE_*`` variable and what is wrong."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "?"
    return f"setting PIPELINE_{name} is invalid: {first['msg']}"


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

    # Inputs stay out of error messages: URLs carry passwords.
    model_config = SettingsConfigDict(
        env_prefix="PIPELINE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="AMQP URL of the broker, vhost included; a comma-separated list for the "
        "nodes of a cluster (docs/scaling.md)",
    )
    management_url: SecretStr = Field(
        SecretStr("http://guest:guest@127.0.0.1:15672/"),
        description="RabbitMQ management HTTP API (status, drift checks, UI link); a "
        "comma-separated list for a cluster",
    )
    service_name: str = Field("pipeline", description="CloudEvents source and connection name")
    app: str | None = Field(
        None, description="module:attribute of your App, e.g. myservice.consumers:app"
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    prefetch: int = Field(2, ge=1, le=65535, description="default unacked deliveries per consumer")
    retry_delays: str = Field(DEFAULT_LADDER, description="the retry ladder, e.g. 1s,5s,30s,5m,30m")
    drift_check: Literal["fail", "warn"] = Field(
        "fail", description="a consumer whose policy drift check cannot run refuses to start "
        "(fail) or starts with a warning (warn)"
    )
    delivery_limit: int = Field(
        20, ge=1, description="deliveries before a crash-looping message is dead-lettered"
    )
    # Members of each new quorum queue and stream; RabbitMQ takes at most the
    # nodes running when the queue is declared (docs/scaling.md).
    queue_replicas: int = Field(
        DEFAULT_REPLICAS, ge=1, le=99,
        description="replicas of each new queue (all nodes up to this many; default 3)",
    )
    confirm_timeout_s: float = Field(10.0, gt=0, description="wait for a publisher confirm")
    connect_timeout_s: float = Field(30.0, gt=0, description="keep retrying the first connect")
    reconnect_interval_s: float = Field(
        1.0, gt=0, description="first wait before reconnecting; grows with the outage to 15s"
    )
    shutdown_timeout_s: float = Field(30.0, ge=0, description="drain in-flight handlers on stop")
    # The circuit breaker (docs/flow-control.md): after this many transient failures in a
    # row a worker stops taking deliveries for the cool-down, then probes with one.
    breaker_failures: int = Field(
        0, ge=0, description="consecutive transient failures that open a consumer's breaker "
        "(0: no breaker)")
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="seconds an open breaker waits before probing with one delivery")
    max_message_bytes: int = Field(1_048_576, ge=1024, description="refuse bigger events")
    error_header_bytes: int = Field(2048, ge=128, description="cap for error text in headers")
    traceback_header_bytes: int = Field(8192, ge=256, description="cap for traceback headers")
    redaction_hook: str | None = Field(
        None, description="module:function(str) -> str run on error text after the built-in "
        "redaction (URL passwords, bearer tokens, key=secret), in headers, logs and notices",
    )
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
    # One span per delivery by default (the CONSUMER process span, which also
    # records a handler's exception): a second span per delivery is most of
    # tracing's cost (docs/performance.md), so the handler's own is opt-in.
    trace_handler_span: bool = Field(
        False, description="also open an INTERNAL span around each handler call"
    )

    # The event status ledger (docs/ledger.md). Workers batch their outcome
    # records (flushed every ledger_flush_ms or ledger_batch records); the
    # ledger process and `pipeline events` read and write ledger_url.
    ledger: bool = Field(True, description="declare the ledger queue and send outcome records")
    ledger_url: str = Field(
        "sqlite:///pipeline-ledger.db",
        description="SQLAlchemy URL: sqlite:///relative.db, sqlite:////abs.db, postgresql://...",
    )
    ledger_flush_ms: int = Field(100, ge=1, le=60_000, description="worker record buffer flush")
    ledger_batch: int = Field(500, ge=1, le=10_000, description="records per flush at most")
    ledger_retention: str = Field("7d", description="prune completed events older than this")
    # The transactional outbox and the idempotent inbox (docs/outbox-inbox.md).
    outbox_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the database holding pipeline_outbox "
        "(postgresql+psycopg://..., sqlite:///app.db)",
    )
    outbox_relay: bool = Field(False, description="worker processes also relay the outbox")
    outbox_batch: int = Field(200, ge=1, le=10_000, description="rows one relay claims at once")
    outbox_poll_s: float = Field(
        1.0, gt=0, le=300, description="relay poll when no wake-up came (NOTIFY, in-process)"
    )
    outbox_lease_s: float = Field(
        30.0, gt=0, description="a claimed batch is another relay's after this long"
    )
    outbox_retention: str = Field("1d", description="keep sent outbox rows this long")
    inbox_retention: str = Field(
        "7d", description="remember handled event ids this long (duplicates within it are "
        "recognised)"
    )

    @field_validator("app", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("amqp_url", "management_url")
    @classmethod
    def _urls_are_readable(cls, value: SecretStr) -> SecretStr:
        # The message never quotes the value: it holds passwords.
        split_urls(value.get_secret_value())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("retry_delays")
    @classmethod
    def _ladder_is_readable(cls, value: str) -> str:
        RetryLadder.parse(value)
        return value

    @field_validator("ledger_retention", "outbox_retention", "inbox_retention")
    @classmethod
    def _retention_is_readable(cls, value: str) -> str:
        parse_age(value)
        return value

    @field_validator("outbox_url", mode="before")
    @classmethod
    def _no_url_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @cached_property
    def ladder(self) -> RetryLadder:
        return RetryLadder.parse(self.retry_delays)

    @property
    def ledger_retention_age(self) -> timedelta:
        return parse_age(self.ledger_retention)

    @property
    def outbox_retention_age(self) -> timedelta:
        return parse_age(self.outbox_retention)

    @property
    def inbox_retention_age(self) -> timedelta:
        return parse_age(self.inbox_retention)

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """Each node's AMQP URL, in the order clients try them (``pipeline.node_list``)."""
        return split_urls(self.amqp_url.get_secret_value())

    @property
    def management_urls(self) -> tuple[str, ...]:
        """Each node's management API URL, in the order clients try them."""
        return split_urls(self.management_url.get_secret_value())

    @property
    def safe_amqp_url(self) -> str:
        return ",".join(redact_url(url) for url in self.amqp_urls)

    @property
    def broker_address(self) -> str:
        urls = self.amqp_urls
        parts = urlsplit(urls[0])
        if parts.scheme == "memory":
            return f"memory://{parts.netloc}"
        return ",".join(address(url, 5672) for url in urls)

    @property
    def is_memory(self) -> bool:
        """True for ``memory://``: the broker inside this process (``pipeline.memory``)."""
        return self.amqp_url.get_secret_value().startswith("memory://")

    @property
    def vhost(self) -> str:
        path = urlsplit(self.amqp_urls[0]).path
        return unquote(path[1:]) if len(path) > 1 else "/"
