"""Where notices go: the log, webhook and e-mail sinks, and the settings that pick them.

    PIPELINE_NOTIFIER_SINKS=log,webhook,email

* ``log``: one structured log line (the default);
* ``webhook``: an HTTP POST of JSON with a Slack-compatible ``text`` and
  every notice field (``PIPELINE_NOTIFIER_WEBHOOK_URL``);
* ``email``: one plain-text mail per notice (``PIPELINE_NOTIFIER_SMTP_*``).

Each sink is retried on its own (tenacity) so a flaky webhook does not
resend the mail; if one still fails the notice counts as not delivered and
the admin notifier parks the dead letters it was about.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from consumers.admin_notifier.notice import DeadLetterNotice
from consumers.admin_notifier.protocols import Notifier
from consumers.admin_notifier.settings import NotifierSettings
from pipeline.errors import ConfigurationError

log = logging.getLogger(__name__)


class NoticeDeliveryError(Exception):
    """A sink could not deliver a notice (the message says which and why)."""


class LogNotifier:
    """One structured log line per notice (the default sink)."""

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        log.error(
            "DEAD LETTER x%d: %s | %s", count, notice.text(count),
            json.dumps(notice.as_dict(count), sort_keys=True),
        )


class WebhookNotifier:
    """POSTs ``{"text": ..., <notice fields>}``: Slack, Mattermost or any JSON endpoint."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._url = url
        parts = urlsplit(url)
        # Webhook URLs carry their secret in the path: show only where they point.
        self._where = f"{parts.scheme}://{parts.hostname}"
        self._timeout_s = timeout_s

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        payload = {"text": notice.text(count), **notice.as_dict(count)}
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                response = await client.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise NoticeDeliveryError(
                f"webhook {self._where} did not answer: {type(exc).__name__}"
            ) from None
        if response.status_code >= 300:
            raise NoticeDeliveryError(
                f"webhook {self._where} answered HTTP {response.status_code}"
            )


class EmailNotifier:
    """Sends one plain-text mail per notice over SMTP (in a thread: smtplib blocks)."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        self._to = [a.strip() for a in settings.smtp_to.split(",") if a.strip()]
        if not self._to:
            raise ConfigurationError(
                "the email notifier needs PIPELINE_NOTIFIER_SMTP_TO (comma-separated addresses)"
            )

    def _message(self, notice: DeadLetterNotice, count: int) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = (
            f"[pipeline] dead letter x{count}: {notice.event_type} in {notice.consumer} "
            f"({notice.error_type})"
        )
        message["From"] = self._settings.smtp_from
        message["To"] = ", ".join(self._to)
        message.set_content(
            notice.text(count) + "\n\n" + json.dumps(notice.as_dict(count), indent=2) + "\n"
        )
        return message

    def _deliver(self, message: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user and s.smtp_password:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(message)

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        try:
            await asyncio.to_thread(self._deliver, self._message(notice, count))
        except (OSError, smtplib.SMTPException) as exc:
            raise NoticeDeliveryError(
                f"SMTP {self._settings.smtp_host}:{self._settings.smtp_port} "
                f"did not take the mail: {type(exc).__name__}: {exc}"
            ) from None


class RetryingNotifier:
    """Tries one sink up to ``attempts`` times with exponential backoff, then raises."""

    def __init__(self, sink: Notifier, attempts: int, wait_s: float = 0.2) -> None:
        self.sink = sink
        self._attempts = attempts
        self._wait_s = wait_s

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._wait_s, max=10),
            before_sleep=lambda state: log.warning(
                "notice sink %s failed (attempt %d): %s; retrying", type(self.sink).__name__,
                state.attempt_number, state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.sink.send(notice, count)


class FanOutNotifier:
    """Sends to every sink; raises if any of them failed (the others still got it)."""

    def __init__(self, sinks: Sequence[Notifier]) -> None:
        self.sinks = list(sinks)

    async def send(self, notice: DeadLetterNotice, count: int = 1) -> None:
        results = await asyncio.gather(
            *(sink.send(notice, count) for sink in self.sinks), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise NoticeDeliveryError("; ".join(str(e) for e in errors))


def notifier_from_settings(settings: NotifierSettings) -> Notifier:
    """The sinks named by ``PIPELINE_NOTIFIER_SINKS``, each retried.

    Raises ``ConfigurationError`` for an unknown sink or a missing setting.
    """
    sinks: list[Notifier] = []
    for name in [n.strip() for n in settings.sinks.split(",") if n.strip()]:
        if name == "log":
            sinks.append(LogNotifier())
        elif name == "webhook":
            if settings.webhook_url is None:
                raise ConfigurationError("the webhook notifier needs PIPELINE_NOTIFIER_WEBHOOK_URL")
            sinks.append(WebhookNotifier(settings.webhook_url.get_secret_value()))
        elif name == "email":
            sinks.append(EmailNotifier(settings))
        else:
            raise ConfigurationError(
                f"unknown notifier sink {name!r} in PIPELINE_NOTIFIER_SINKS; use log, webhook "
                "and/or email"
            )
    if not sinks:
        raise ConfigurationError("PIPELINE_NOTIFIER_SINKS names no sink; use log, webhook, email")
    return with_retries(sinks, settings.send_attempts)


def with_retries(sinks: Sequence[Notifier], attempts: int) -> Notifier:
    """Each sink retried on its own; one sink is returned as itself, not fanned out."""
    retried = [RetryingNotifier(sink, attempts) for sink in sinks]
    return retried[0] if len(retried) == 1 else FanOutNotifier(retried)
