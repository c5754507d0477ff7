"""The consume gate without a broker: pause, probe until it works, resume; shut gives up."""

from __future__ import annotations

import asyncio

from pipeline.consume.gate import Gate


class Switch:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def pause(self) -> None:
        self.calls.append("pause")

    async def resume(self) -> None:
        self.calls.append("resume")


async def test_a_trip_pauses_probes_until_the_probe_succeeds_then_resumes() -> None:
    gate, switch = Gate("test", first_probe_s=0.01, max_probe_s=0.02), Switch()
    gate.attach(switch)
    answers = iter([False, False, True])
    probes: list[bool] = []

    async def probe() -> bool:
        probes.append(next(answers))
        assert not gate.is_open  # closed while probing
        return probes[-1]

    assert await gate.trip("copy refused", probe)
    assert probes == [False, False, True]
    assert switch.calls == ["pause", "resume"]
    assert gate.is_open
    assert gate.trips == 1


async def test_a_second_trip_while_closed_returns_at_once_and_a_probe_that_raises_fails() -> None:
    gate = Gate("test", first_probe_s=0.01, max_probe_s=0.02)
    release = asyncio.Event()
    attempts = 0

    async def probe() -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("broker away")
        return release.is_set()

    first = asyncio.create_task(gate.trip("copy refused", probe))
    await asyncio.sleep(0.03)
    assert not await gate.trip("another copy refused", probe)  # one probe at a time
    release.set()
    assert await asyncio.wait_for(first, 1)
    assert gate.trips == 1


async def test_shut_ends_the_probing_without_resuming() -> None:
    gate, switch = Gate("test", first_probe_s=0.01, max_probe_s=0.02), Switch()
    gate.attach(switch)

    async def never() -> bool:
        return False

    tripped = asyncio.create_task(gate.trip("copy refused", never))
    await asyncio.sleep(0.05)
    gate.shut()
    assert not await asyncio.wait_for(tripped, 1)
    assert switch.calls == ["pause"]
    assert not gate.is_open
