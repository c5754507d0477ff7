"""Durations as people type and read them: ``7d``, ``90s``; ``104 ms``, ``5m 02s``, ``1d 02h``.

One reader (``parse_age``) and one writer (``format_duration``) for every
command, report and trace tree, so the same span of time always looks the same.
"""

from __future__ import annotations

from datetime import timedelta

from topology import parse_duration


def parse_age(text: str) -> timedelta:
    """``"90s"``, ``"1h"``, ``"7d"`` as a timedelta; ``ValueError`` says what is accepted."""
    stripped = text.strip()
    if stripped.endswith("d") and stripped[:-1].replace(".", "", 1).isdigit():
        return timedelta(days=float(stripped[:-1]))
    try:
        return parse_duration(stripped)
    except ValueError:
        raise ValueError(
            f"cannot read age {text!r}: write a number and a unit (s, m, h or d), e.g. 1h, 7d"
        ) from None


def format_duration(seconds: float) -> str:
    """A short duration: ``0.4 ms``, ``104 ms``, ``1.23 s``, ``42 s``, ``5m 02s``, ``1d 02h``.

    Below ten seconds it keeps sub-second precision (span timings); above, it
    rounds to the two largest units (ages, uptimes).
    """
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{round(seconds)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
