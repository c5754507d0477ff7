"""Connecting to the broker: retried with backoff at startup, robust after.

``connect_robust`` reconnects and restores channels, queues and consumers on
its own once a first connection exists; with several nodes in
``PIPELINE_AMQP_URL`` the first connection goes to the first node that answers
and each reconnect to the next node (``BackoffRobustConnection``); tenacity
only covers the first one, when the broker may still be starting (compose, CI). After that,
``connection_watch`` backs the reconnect wait off with the outage and logs
one line when the connection is lost, restored, blocked or unblocked.
"""

from __future__ import annotations

import logging
import ssl

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from pipeline import header_depth
from pipeline.connection_watch import BackoffRobustConnection, watch
from pipeline.errors import BrokerUnreachableError, CredentialsRefusedError
from pipeline.memory.url import is_memory_url
from pipeline.node_list import address
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


def _is_retryable(exc: BaseException) -> bool:
    # Wrong credentials will not fix themselves; a starting broker will.
    if isinstance(exc, AuthenticationError | ProbableAuthenticationError):
        return False
    # Neither will a certificate that does not verify against our CA.
    if _tls_error(exc) is not None:
        return False
    return isinstance(exc, AMQPConnectionError | OSError | ConnectionError)


async def connect(settings: PipelineSettings, name: str) -> AbstractRobustConnection:
    """Open a robust connection named ``name`` (shown in the management UI).

    Raises ``BrokerUnreachableError`` naming host:port (never the password)
    after ``connect_timeout_s`` of retries, ``CredentialsRefusedError`` at
    once when the broker refuses the user, the password or the vhost. A
    ``memory://`` URL connects to the broker inside this process
    (``pipeline.memory``) instead.
    """
    header_depth.install()  # a deeply nested header must not kill the frame reader
    url = settings.amqp_url.get_secret_value()
    if is_memory_url(url):
        # Imported here: only a memory:// URL needs the in-process broker.
        from pipeline.memory.transport import connect_memory

        connection = await connect_memory(
            url, name, settings.reconnect_interval_s, settings.connect_timeout_s
        )
        return watch(connection, name, settings.broker_address)
    retrying = AsyncRetrying(
        retry=retry_if_exception(_is_retryable),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(settings.connect_timeout_s),
        before_sleep=lambda state: log.warning(
            "broker %s not reachable yet (attempt %d): %s; retrying",
            settings.broker_address,
            state.attempt_number,
            _describe(state.outcome.exception() if state.outcome else None),
        ),
        reraise=False,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await _connect_first_node(settings, name)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise BrokerUnreachableError(_unreachable(settings, cause)) from None
    except InvalidFrameError:
        # RabbitMQ answers connection.open with connection.close when the
        # user may not use the vhost (or it does not exist).
        raise CredentialsRefusedError(
            f"the broker at {settings.broker_address} closed the connection on opening vhost "
            f"{settings.vhost!r}: it does not exist or the user in PIPELINE_AMQP_URL "
            f"({settings.safe_amqp_url}) has no permissions on it"
        ) from None
    except (AuthenticationError, ProbableAuthenticationError):
        raise CredentialsRefusedError(
            f"the broker at {settings.broker_address} refused the credentials in "
            f"PIPELINE_AMQP_URL ({settings.safe_amqp_url}) or the vhost {settings.vhost!r} "
            "does not exist"
        ) from None
    except (ssl.SSLError, AMQPConnectionError) as exc:
        tls = _tls_error(exc)
        if tls is None:
            raise
        raise BrokerUnreachableError(_tls_failed(settings, tls)) from None
    raise AssertionError("unreachable")  # pragma: no cover


async def _connect_first_node(
    settings: PipelineSettings, name: str
) -> AbstractRobustConnection:
    """A connection to the first node of ``PIPELINE_AMQP_URL`` that answers.

    A node that does not answer is skipped; credentials refused end the
    search at once (the nodes of one cluster share their users). When no
    node answers, the last node's error goes to the caller's back-off.
    """
    urls = settings.amqp_urls
    last: BaseException | None = None
    for index, url in enumerate(urls):
        try:
            connection = await aio_pika.connect_robust(
                url,
                client_properties={"connection_name": name},
                connection_class=BackoffRobustConnection,
                reconnect_interval=settings.reconnect_interval_s,
            )
        except Exception as exc:
            if not _is_retryable(exc) or index == len(urls) - 1:
                raise
            log.info("broker node %s did not answer (%s); trying the next node",
                     address(url, 5672), _describe(exc))
            last = exc
            continue
        connection.use_nodes(urls, index)
        return watch(connection, name, settings.broker_address)
    raise last or AssertionError("no node")  # pragma: no cover


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]


def _tls_error(exc: BaseException | None) -> ssl.SSLError | None:
    # aiormq wraps the handshake's SSLError in AMQPConnectionError (``from``).
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__
    return None


def _tls_failed(settings: PipelineSettings, exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed ({exc.verify_message})"
    else:
        reason = str(exc.reason or exc)
    return (
        f"TLS handshake with RabbitMQ at {settings.broker_address} failed: {reason}. "
        "Check that cafile= in PIPELINE_AMQP_URL names the CA that signed the broker's "
        "certificate and that the certificate is valid for this host name"
    )


def _unreachable(settings: PipelineSettings, cause: BaseException | None) -> str:
    return (
        f"cannot connect to RabbitMQ at {settings.broker_address} (vhost {settings.vhost!r}) "
        f"after {settings.connect_timeout_s:g}s: {_describe(cause)}. Start it with "
        "`rabbitmq-server -detached` (local install) or `docker compose up -d rabbitmq`, "
        "or point PIPELINE_AMQP_URL at a running broker"
    )
