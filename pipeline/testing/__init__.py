"""Testing handlers: the app's consumers on an in-memory broker with a virtual clock.

    harness.py      TestPipeline: publish, advance the clock, settle, look
    whereabouts.py  Whereabouts and State: where an event is for one consumer
    recorder.py     the outcome of every delivery (an outermost middleware)
    plugin.py       pytest fixtures (``pipeline_app``, ``test_pipeline``), loaded
                    through the ``pytest11`` entry point

Needs the ``worker`` extra; the plugin's async fixture needs pytest-asyncio
(``pip install 'rabbit-pipeline[testing]'``). See docs/testing.md.
"""

from pipeline.testing.harness import SettleTimeoutError, TestPipeline
from pipeline.testing.recorder import Attempt
from pipeline.testing.whereabouts import State, Whereabouts

__all__ = ["Attempt", "SettleTimeoutError", "State", "TestPipeline", "Whereabouts"]
