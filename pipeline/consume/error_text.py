"""The text of a failure: ``Type: message`` and the traceback, as the failure headers carry it.

``traceback.format_exception`` costs more than the rest of the failure path
together on Python 3.11: for every frame it stats the source file
(``linecache.checkcache``) and re-parses the source line with ``ast`` to draw
the ``^^^`` markers under the failing expression. ``format_traceback`` writes
what an operator reads in the ``pipeline-traceback`` header (every chained
exception with its frames: file, line, function and source line, then
``module.Type: message`` and any notes) in the same layout, without the
markers, and only for the innermost ``MAX_FRAMES`` frames of each exception:
the header keeps the end of the text anyway (``headers.truncate``).
"""

from __future__ import annotations

import linecache
import traceback
from types import CodeType, TracebackType
from typing import Any

# Frames kept per exception, innermost first: where it was raised. A
# RecursionError's thousand frames would be cut to the header's size anyway.
MAX_FRAMES = 50
# Exceptions kept along a __cause__ / __context__ chain, the last raised first.
MAX_CHAIN = 10

# As traceback.py: a frame repeated more often in a row is counted, not shown.
_REPEATS = 3

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def describe_exception(error: BaseException) -> str:
    """``module.Type: message`` (no module for builtins), then its notes, as Python prints it."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        message = str(error)
    except Exception:
        message = "<exception str() failed>"
    text = f"{name}: {message}\n" if message else f"{name}\n"
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, list | tuple):
        for note in notes:
            try:
                text += f"{note}\n"
            except Exception:
                text += "<note str() failed>\n"
    return text


def format_traceback(error: BaseException) -> str:
    """``error``'s traceback and its chain, laid out as Python prints them, minus the markers.

    Exception groups fall back to ``traceback.format_exception``: they are
    rare on the failure path, and their nested layout is worth its cost there.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    joint = ""
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        if isinstance(current, BaseExceptionGroup):
            return "".join(traceback.format_exception(error))
        seen.add(id(current))
        chain.append((current, joint))
        if current.__cause__ is not None:
            current, joint = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for exception, joint in reversed(chain):
        parts.append(_frames(exception.__traceback__))
        parts.append(describe_exception(exception))
        parts.append(joint)
    return "".join(parts)


def _frames(tb: TracebackType | None) -> str:
    if tb is None:
        return ""
    # (code, line, frame globals) per frame; like Python, a frame repeated more
    # than _REPEATS times in a row (recursion) is shown _REPEATS times and counted.
    shown: list[tuple[CodeType, int, dict[str, Any]] | int] = []
    last: tuple[CodeType, int] | None = None
    repeats = 0
    while tb is not None:
        code, lineno = tb.tb_frame.f_code, tb.tb_lineno
        if (code, lineno) == last:
            repeats += 1
        else:
            if repeats > _REPEATS:
                shown.append(repeats - _REPEATS)
            last, repeats = (code, lineno), 1
        if repeats <= _REPEATS:
            shown.append((code, lineno, tb.tb_frame.f_globals))
        tb = tb.tb_next
    if repeats > _REPEATS:
        shown.append(repeats - _REPEATS)
    lines = ["Traceback (most recent call last):\n"]
    omitted = len(shown) - MAX_FRAMES
    if omitted > 0:
        shown = shown[omitted:]
        lines.append(f"  ... {omitted} outer lines omitted ...\n")
    for entry in shown:
        if isinstance(entry, int):
            lines.append(f"  [Previous line repeated {entry} more times]\n")
            continue
        code, lineno, module_globals = entry
        text = _FRAME_TEXT.get((code, lineno))
        if text is None:
            text = _frame_text(code, lineno, module_globals)
        lines.append(text)
    return "".join(lines)


# The two lines of a frame, by (code, line): a handler that keeps failing the
# same way formats the same frames again and again. Bounded: cleared when full.
_FRAME_TEXT: dict[tuple[CodeType, int], str] = {}
_FRAME_TEXT_MAX = 1024


def _frame_text(code: CodeType, lineno: int, module_globals: dict[str, Any]) -> str:
    text = f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n'
    # The source line from linecache's copy (read once per file, never
    # re-stat'ed here: a deploy restarts the process anyway).
    source = linecache.getline(code.co_filename, lineno, module_globals).strip()
    if source:
        text += f"    {source}\n"
    if len(_FRAME_TEXT) >= _FRAME_TEXT_MAX:
        _FRAME_TEXT.clear()
    _FRAME_TEXT[code, lineno] = text
    return text
