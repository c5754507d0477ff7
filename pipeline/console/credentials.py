"""Acting as the user who logged in: the pipeline's settings with that user's credentials.

Every broker operation of the console (the store, replay, cancel, status) runs
through the same code as the CLI, with a ``PipelineSettings`` whose AMQP and
management URLs carry the logged-in user's name and password. So the broker
decides what the user may do, exactly as it would for that user's CLI.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import SecretStr

from pipeline.settings import PipelineSettings

# The start of every URL in a setting ("amqp://u:p@h1,h2/vh" or "amqp://a/,amqp://b/"):
# its scheme and, if present, its user information.
_URL_START = re.compile(r"(?P<lead>^|,\s*)(?P<scheme>[a-z][a-z0-9+.-]*://)(?:[^@/?#,]*@)?")

# Logging in must answer quickly: a broker that is down is said so at once.
LOGIN_CONNECT_TIMEOUT_S = 5.0


def with_user(url: str, user: str, password: str) -> str:
    """``url`` (one URL or a comma-separated list) with ``user:password`` in each URL."""
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    return _URL_START.sub(lambda m: f"{m['lead']}{m['scheme']}{userinfo}", url)


def as_user(settings: PipelineSettings, user: str, password: str) -> PipelineSettings:
    """``settings`` acting as ``user``: the same broker, vhost, app and ledger."""
    return settings.model_copy(update={
        "amqp_url": SecretStr(with_user(settings.amqp_url.get_secret_value(), user, password)),
        "management_url": SecretStr(
            with_user(settings.management_url.get_secret_value(), user, password)
        ),
        "connect_timeout_s": min(settings.connect_timeout_s, LOGIN_CONNECT_TIMEOUT_S),
    })
