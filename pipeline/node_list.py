"""Several broker nodes in one setting: ``PIPELINE_AMQP_URL`` and ``PIPELINE_MANAGEMENT_URL``.

A RabbitMQ cluster is reached through any of its nodes, so both settings accept
a comma-separated list. Two spellings are read, because both are common:

* full URLs: ``amqp://app:pw@rabbit-1:5672/prod,amqp://app:pw@rabbit-2:5672/prod``
* hosts after the first URL: ``amqp://app:pw@rabbit-1:5672/prod,rabbit-2:5672,rabbit-3``
  (a bare ``host[:port]`` takes the scheme, user, password, path and query of
  the first URL, so the password is written once).

Clients try the nodes in the order given: the first that answers is used, and
on connection loss the next one (``pipeline.connection``, ``pipeline.ops.management``).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def split_urls(value: str) -> tuple[str, ...]:
    """The URLs of a comma-separated setting, bare hosts completed from the first URL.

    Raises ``ValueError`` for an empty list, or when the URLs name different
    vhosts (a client moving between nodes must land in the same vhost).
    """
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError("no URL given")
    first = urlsplit(items[0])
    urls: list[str] = []
    for item in items:
        if "://" in item:
            urls.append(item)
            continue
        userinfo = first.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{item}" if userinfo else item
        urls.append(urlunsplit(first._replace(netloc=netloc)))
    vhosts = {_path(url) for url in urls}
    if len(vhosts) > 1:
        raise ValueError(f"the URLs name different vhosts ({', '.join(sorted(vhosts))})")
    return tuple(urls)


def address(url: str, default_port: int) -> str:
    """``host:port`` of ``url``: what logs and errors name (never the password)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or default_port}"


def _path(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"
