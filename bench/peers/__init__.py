"""FastStream, Dramatiq and Celery beside ours and raw aio-pika, in the same run.

``python -m bench --cases peers`` (``make bench-peers``). One module per side
(``ours``, ``raw_side``, ``faststream_peer``, ``dramatiq_peer``,
``celery_peer``), each saying how its library is configured for the same
guarantees: persistent messages, publisher confirms awaited per publish,
``mandatory`` where the library has it, and a manual ack after the handler
returned with at most 100 deliveries unacked. ``runner`` interleaves them.
The peers are imported only when this case runs.
"""

from __future__ import annotations

from bench.harness import Bench
from bench.results import Result


async def run(bench: Bench) -> list[Result]:
    from bench.peers import runner

    return await runner.run(bench)
