"""The admin notifier's own settings, read once from ``PIPELINE_NOTIFIER_*``.

They live here, not in ``PipelineSettings``: no other worker, publisher or
command needs to know where notices go.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifierSettings(BaseSettings):
    """Where notices go and how they are grouped (env prefix ``PIPELINE_NOTIFIER_``)."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_NOTIFIER_", frozen=True, extra="ignore")

    sinks: str = Field("log", description="comma-separated: log, webhook, email")
    webhook_url: SecretStr | None = Field(None, description="POST target (Slack-style)")
    smtp_host: str = Field("localhost", description="SMTP server for the email sink")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port")
    smtp_starttls: bool = Field(False, description="upgrade the SMTP session with TLS")
    smtp_user: str | None = Field(None, description="SMTP login, if the server wants one")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_from: str = Field("pipeline@localhost", description="sender of notice mails")
    smtp_to: str = Field("", description="comma-separated recipients of notice mails")
    group_window_s: float = Field(60.0, gt=0, description="group equal failures this long")
    prefetch: int = Field(1000, ge=1, le=65535, description="dead letters held per window")
    max_held_bytes: int = Field(
        64 * 1024 * 1024, ge=1024,
        description="bytes of dead letters held waiting for a window's notice; past it the "
        "open windows send their notices at once")
    send_attempts: int = Field(4, ge=1, description="tries per sink before parking")
