"""The one redaction step for exception text: failure headers, log lines and notices.

An exception's message and traceback often quote what the handler was doing:
a connection URL with its password, an ``Authorization: Bearer ...`` header.
Everything that leaves the process with such text (the ``pipeline-last-error``
and ``pipeline-traceback`` headers, every log line, every admin notice) goes
through ``Redactor``: built-in patterns first, then the deployment's own hook
(``PIPELINE_REDACTION_HOOK=module:function``, ``str -> str``), then a size cap.

A hook that raises must not leak what it was meant to hide, so its failure
replaces the text with a placeholder (fail closed) and is logged once.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from collections.abc import Callable

from pipeline.errors import ConfigurationError
from pipeline.headers import truncate
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

Hook = Callable[[str], str]

MASK = "***"
HOOK_FAILED = "[redacted: the redaction hook failed]"

# scheme://user:password@host -> scheme://user:***@host (amqp, postgres, http...)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
# Authorization values: Bearer / Basic / Token followed by the credential.
_AUTH_SCHEME = re.compile(r"(?i)\b(?P<head>bearer|basic|token)(?P<sep>\s+)[A-Za-z0-9\-._~+/]+=*")
# password=..., api_key: ..., secret=... in query strings, dicts and messages.
_KEY_VALUE = re.compile(
    r"(?i)(?P<head>\b[\w-]*(?:password|passwd|secret|api[_-]?key|access[_-]?token|token)"
    r"['\"]?\s*[=:]\s*['\"]?)[^\s'\"&,;}]+"
)



def redact_builtin(text: str) -> str:
    """The patterns every deployment gets: URL passwords, auth schemes, key=value secrets."""
    # Each pattern runs only if a word it cannot match without occurs: _KEY_VALUE
    # backtracks over every word of the text (hundreds of µs for a traceback).
    # Lowercasing finds the words as (?i) would for ASCII text only (re folds
    # U+017F to "s" and U+0131 to "i", str.lower does not): other text runs them all.
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + "@", text)
    if not text.isascii():
        text = _AUTH_SCHEME.sub(lambda m: m["head"] + m["sep"] + MASK, text)
        return _KEY_VALUE.sub(lambda m: m["head"] + MASK, text)
    folded = text.lower()
    has_token = "token" in folded
    if has_token or "bearer" in folded or "basic" in folded:
        text = _AUTH_SCHEME.sub(lambda m: m["head"] + m["sep"] + MASK, text)
    if has_token or "pass" in folded or "secret" in folded or "api" in folded:
        # "pass" covers password and passwd; "api" api_key; "token" access_token.
        text = _KEY_VALUE.sub(lambda m: m["head"] + MASK, text)
    return text


class Redactor:
    """Redact, then cap (keeping the end, where a traceback names the error).

    ``hook`` is the deployment's own step, after the built-in one.
    """

    def __init__(self, hook: Hook | None = None) -> None:
        self._hook = hook
        self._warned = False

    def __call__(self, text: str, limit_bytes: int | None = None) -> str:
        text = redact_builtin(text)
        if self._hook is not None:
            try:
                text = str(self._hook(text))
            except Exception as exc:
                if not self._warned:
                    self._warned = True
                    # Only the exception type: its message may quote the text.
                    log.error("the redaction hook (PIPELINE_REDACTION_HOOK) raised %s; "
                              "error text is replaced by a placeholder until it is fixed",
                              type(exc).__name__)
                text = HOOK_FAILED
        return text if limit_bytes is None else truncate(text, limit_bytes)


def redactor_for(settings: PipelineSettings) -> Redactor:
    """The deployment's redactor; raises ``ConfigurationError`` for a hook that cannot load."""
    return _redactor(settings.redaction_hook)


@functools.lru_cache(maxsize=8)
def _redactor(path: str | None) -> Redactor:
    return Redactor(load_hook(path) if path else None)


def load_hook(path: str) -> Hook:
    """Import ``module:function``; ``ConfigurationError`` saying what is wrong."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"PIPELINE_REDACTION_HOOK={path!r} must look like 'package.module:function'")
    try:
        hook = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load PIPELINE_REDACTION_HOOK={path!r}: {exc}") from None
    if not callable(hook):
        raise ConfigurationError(f"PIPELINE_REDACTION_HOOK={path!r} is not callable")
    return hook  # type: ignore[no-any-return]
