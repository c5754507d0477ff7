"""The live demo behind ``pipeline demo`` (and ``make run``): the orders domain at work."""

from consumers.demo.options import FAST_LADDER, DemoOptions
from consumers.demo.runner import run_demo

__all__ = ["FAST_LADDER", "DemoOptions", "run_demo"]
