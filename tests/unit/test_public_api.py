"""``from pipeline import X``: every public name, loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import pipeline
from pipeline import memory


@pytest.mark.parametrize("package", [pipeline, memory])
def test_every_public_name_is_importable_from_its_package(package):
    for name in package.__all__:
        value = getattr(package, name)
        assert value is getattr(importlib.import_module(package._HOMES[name]), name)
        assert name in dir(package)
    assert set(package.__all__) == set(package._HOMES)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        package.Nothing  # noqa: B018


def test_importing_a_submodule_loads_no_other_part_of_the_package():
    script = ("import sys, pipeline.headers, pipeline.memory\n"
              "print(sorted(m for m in sys.modules if m.startswith('pipeline')))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "['pipeline', 'pipeline.errors', 'pipeline.headers', 'pipeline.memory']"


def test_a_worker_process_does_not_load_the_command_line_libraries():
    # httpx (the worker's management API client) would import its own CLI, with
    # click, rich and pygments, whenever they are installed: about 5 MB per worker.
    script = ("import sys, pipeline.consume.process, httpx\n"
              "print(sorted({m.split('.')[0] for m in sys.modules} & "
              "{'rich', 'click', 'pygments'}))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
