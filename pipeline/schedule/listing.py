"""What `pipeline schedules list` shows: each schedule's next and last tick, and who leads.

The leader is the active consumer of ``pipeline.scheduler.leader`` (the
management API marks it ``single_active``); its connection name says which
replica it is. Whether the last tick fired is the ledger's answer for the
tick's event id, when a ledger is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pipeline.app import App
from pipeline.errors import PipelineError
from pipeline.ops.management import open_management
from pipeline.settings import PipelineSettings
from topology import naming


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    event_type: str
    when: str
    missed: str
    next_tick: datetime
    last_tick: datetime
    last_event_id: str
    last_state: str | None  # the ledger's state of the last tick's event, if it knows it


def _active_connection(queue: dict[str, Any]) -> str | None:
    """The broker's name of the active consumer's connection ("ip:port -> ip:port")."""
    for consumer in queue.get("consumer_details") or []:
        if consumer.get("activity_status") in (None, "single_active"):
            return str((consumer.get("channel_details") or {}).get("connection_name") or "")
    return None


async def read_leader(settings: PipelineSettings) -> tuple[str | None, int]:
    """(the leading replica's name or None, how many replicas run)."""
    try:
        async with open_management(settings) as api:
            queue = await api.queue(naming.SCHEDULER_LEADER)
            active = _active_connection(queue)
            replicas = len(queue.get("consumer_details") or [])
            if not active:
                return None, replicas
            connection = await api.get(f"/connections/{quote(active, safe='')}")
    except PipelineError:  # no management API, or no scheduler ever ran (no queue)
        return None, 0
    properties = connection.get("client_properties") or {}
    name = connection.get("user_provided_name") or properties.get("connection_name") or active
    return str(name), replicas


async def schedule_rows(settings: PipelineSettings, app: App,
                        now: datetime | None = None) -> list[ScheduleRow]:
    now = now or datetime.now(UTC)
    rows = []
    states: dict[str, str] = {}
    events = {s.name: s.tick_id(s.latest_at_or_before(now)) for s in app.schedules.values()}
    if settings.ledger:
        from pipeline.ledger.api import Ledger  # the ledger extra

        try:
            async with Ledger.open(settings) as ledger:
                for name, event_id in events.items():
                    status = await ledger.status(event_id)
                    if status is not None:
                        states[name] = status.state.value
        except PipelineError:
            pass  # no ledger to ask: the state column stays empty
    for schedule in app.schedules.values():
        rows.append(ScheduleRow(
            schedule.name, schedule.event_type, schedule.when, schedule.missed.value,
            schedule.next_after(now), schedule.latest_at_or_before(now),
            events[schedule.name], states.get(schedule.name),
        ))
    return rows
