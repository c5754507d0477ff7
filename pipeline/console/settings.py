"""The console's own settings, read once from ``PIPELINE_CONSOLE_*``.

They live here, not in ``PipelineSettings``: no worker, publisher or other
command needs to know where the console listens. The broker, the vhost, the
app and the ledger come from ``PipelineSettings`` as for every command; the
console never uses the credentials in ``PIPELINE_AMQP_URL`` or
``PIPELINE_MANAGEMENT_URL``: it acts as the user who logged in.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """Where the console listens and how it keeps sessions (env prefix ``PIPELINE_CONSOLE_``)."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_CONSOLE_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in the image)")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    jaeger_url: str | None = Field(
        None, description="the tracing UI, e.g. http://127.0.0.1:16686: events link to "
        "JAEGER_URL/trace/<trace id>"
    )
    audit_url: str = Field(
        "sqlite:///pipeline-console.db",
        description="database of the audit list: sqlite:///rel.db, sqlite:////abs.db, postgresql://",
    )
    # Secure cookies travel over https only (browsers treat http://127.0.0.1 and
    # http://localhost as secure too); turn off only behind nothing but plain http.
    secure_cookies: bool = Field(True, description="mark the session cookie Secure")
    session_idle_s: float = Field(1800.0, gt=0, description="a session ends after this idle time")
    session_max_s: float = Field(43200.0, gt=0, description="and after this long in any case")
    body_bytes: int = Field(65536, ge=256, description="event bodies shown up to this size")
    rows: int = Field(500, ge=10, le=65535, description="rows per list page at most")
