"""The live demo behind ``pipeline demo`` (and ``make run``)."""

from pipeline.demo.options import FAST_LADDER, DemoOptions
from pipeline.demo.runner import run_demo

__all__ = ["FAST_LADDER", "DemoOptions", "run_demo"]
