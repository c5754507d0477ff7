"""The traceback text the failure headers carry: what an operator reads, cheaply made."""

from __future__ import annotations

import traceback

import pytest

from pipeline.consume import error_text
from pipeline.consume.error_text import describe_exception, format_traceback
from pipeline.errors import TransientError


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("fn did not raise")


def charge_card() -> None:
    raise TransientError("bank timed out")


def handle_order() -> None:
    charge_card()


def test_the_traceback_reads_as_pythons_without_the_markers():
    error = _raised(handle_order)
    text = format_traceback(error)
    python = "".join(traceback.format_exception(error))
    # Python's own text, minus the lines that are only ^ and ~ markers.
    assert text == "".join(line for line in python.splitlines(keepends=True)
                           if line.strip().strip("^~") != "")
    assert text.startswith("Traceback (most recent call last):\n")
    assert '  File "' + __file__ + '", line ' in text
    assert "    charge_card()\n" in text
    assert text.endswith("pipeline.errors.TransientError: bank timed out\n")


def test_a_chained_cause_and_context_are_both_shown_in_order():
    def wrap() -> None:
        try:
            {}["amount"]
        except KeyError as exc:
            try:
                raise ValueError("bad order") from exc
            except ValueError:
                raise RuntimeError("while reporting") from None

    def context() -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            raise OSError("disk full")  # noqa: B904 - the implicit context is the point

    text = format_traceback(_raised(context))
    assert text.index("ZeroDivisionError: division by zero") < text.index(
        "During handling of the above exception, another exception occurred:") < text.index(
        "OSError: disk full")
    # `from None` hides the context, as Python does
    assert format_traceback(_raised(wrap)).count("Traceback (most recent call last)") == 1
    cause = _raised(lambda: _reraise_from(KeyError("amount")))
    text = format_traceback(cause)
    assert "KeyError: 'amount'\n\nThe above exception was the direct cause" in text


def _reraise_from(cause: BaseException) -> None:
    raise ValueError("bad order") from cause


def test_recursion_is_counted_not_repeated_and_the_innermost_frames_are_kept():
    def recurse(n: int) -> int:
        return recurse(n + 1)

    text = format_traceback(_raised(lambda: recurse(0)))
    assert text.count("in recurse\n") == 3
    assert "[Previous line repeated " in text
    assert text.endswith("RecursionError: maximum recursion depth exceeded\n")


def test_a_deep_stack_keeps_its_innermost_frames(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(error_text, "MAX_FRAMES", 5)

    def down(n: int) -> None:
        if n == 0:
            raise TransientError("at the bottom")
        across(n - 1)

    def across(n: int) -> None:  # alternating frames: no repetition to fold
        down(n)

    text = format_traceback(_raised(lambda: down(12)))
    assert text.count('  File "') == 5
    assert "outer lines omitted" in text
    assert "raise TransientError" in text  # the frame that raised is kept


def test_notes_and_exception_groups_are_kept():
    error = TransientError("x")
    error.add_note("order 42")
    assert describe_exception(error) == "pipeline.errors.TransientError: x\norder 42\n"
    assert describe_exception(KeyError("k")) == "KeyError: 'k'\n"
    assert describe_exception(TransientError()) == "pipeline.errors.TransientError\n"
    group = _raised(lambda: _group())
    text = format_traceback(group)
    assert "ExceptionGroup: two failed (2 sub-exceptions)" in text
    assert "ValueError: one" in text
    assert "KeyError: 'two'" in text


def _group() -> None:
    raise ExceptionGroup("two failed", [ValueError("one"), KeyError("two")])
