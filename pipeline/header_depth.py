"""A depth limit for AMQP header tables as the client decodes them.

pamqp decodes a header table recursively, one Python call per nesting level,
and slices the rest of the frame at every level. A table nested a few
thousand levels deep (any client may send one; RabbitMQ passes it on) raised
``RecursionError`` inside aiormq's frame reader: the reader died, the
connection with it, and a robust connection reconnected into the same
message again and again (tests/integration/test_deep_nesting.py).

``install()`` wraps the decoders of nested tables (``F``) and arrays (``A``):
past ``MAX_DEPTH`` levels a value is skipped by its length prefix, without
recursing, and replaced by ``TOO_DEEP``. Headers are data: nothing of ours
reads anything that deep, and the event still reaches its handler.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

from pamqp import decode

MAX_DEPTH = 32
TOO_DEEP = f"(dropped by the pipeline: nested deeper than {MAX_DEPTH} levels)"

_LENGTH = struct.Struct(">I")
_state = threading.local()  # the decode depth of this thread's frame reader
_installed = threading.Lock()

Decoder = Callable[[bytes], tuple[int, Any]]


def _guarded(decoder: Decoder) -> Decoder:
    def decode_bounded(value: bytes) -> tuple[int, Any]:
        depth: int = getattr(_state, "depth", 0)
        if depth >= MAX_DEPTH:
            # Tables and arrays both start with a 4-byte length: skip the value whole.
            (length,) = _LENGTH.unpack_from(value, 0)
            if 4 + length > len(value):
                raise ValueError("nested header value longer than its frame")
            return 4 + length, TOO_DEEP
        _state.depth = depth + 1
        try:
            return decoder(value)
        finally:
            _state.depth = depth

    decode_bounded.__wrapped__ = decoder  # type: ignore[attr-defined]
    return decode_bounded


def install() -> None:
    """Bound the decoding of nested header values (idempotent; called before connecting)."""
    with _installed:
        for code in (b"F", b"A"):
            current = decode.TABLE_MAPPING[code]
            if not hasattr(current, "__wrapped__"):
                decode.TABLE_MAPPING[code] = _guarded(current)
