"""``pipeline events show``: an event's timeline per consumer, for people."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.durations import format_duration
from pipeline.ledger.model import Attempt, ConsumerStatus, EventStatus, State

STATE_STYLES = {
    State.PENDING: "yellow", State.SCHEDULED: "blue", State.PROCESSING: "cyan",
    State.RETRYING: "magenta",
    State.COMPLETED: "green", State.FAILED: "bold red", State.CANCELLED: "dim",
}


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else "-"


def _state(state: State) -> Text:
    return Text(state.value, style=STATE_STYLES[state])


def _attempt_line(number: int, attempt: Attempt) -> str:
    took = attempt.duration_s
    line = f"  #{number} {_when(attempt.started_at)}  {attempt.outcome or 'running'}"
    if took is not None:
        line += f" after {format_duration(took)}"
    if attempt.replay:
        line += f"  (replay {attempt.replay})"
    if attempt.rung:
        line += f"  -> rung {attempt.rung}, due {_when(attempt.due_at)}"
    if attempt.error:
        line += f"\n      {attempt.error}"
    return line


def _consumer_lines(name: str, consumer: ConsumerStatus) -> list[RenderableType]:
    head = Text(f"{name}: ")
    head.append_text(_state(consumer.state))
    if consumer.state is State.RETRYING and consumer.rung:
        head.append(f" on rung {consumer.rung}, due {_when(consumer.due_at)}")
    elif consumer.state is State.SCHEDULED:
        head.append(f", due {_when(consumer.due_at)}")
    lines: list[RenderableType] = [head]
    lines += [Text(_attempt_line(i, a)) for i, a in enumerate(consumer.attempts, 1)]
    if consumer.dead_letter is not None:
        dead = consumer.dead_letter
        lines.append(Text(f"  dead-lettered {_when(dead.dead_lettered_at)} ({dead.reason}): "
                          f"{dead.error or ''}", style="red"))
    return lines


def render_status(status: EventStatus) -> RenderableType:
    """The header (id, type, state, trace) and one block per consumer."""
    table = Table.grid(padding=(0, 2))
    table.add_row("event", status.id + ("" if status.id_kind == "cloudevent"
                                        else f"  ({status.id_kind} id)"))
    table.add_row("type", status.type or "?")
    table.add_row("state", _state(status.state))
    table.add_row("published", f"{_when(status.published_at)}  by {status.source or '?'}"
                  if status.published_at else "not seen by the ledger (yet)")
    table.add_row("trace", status.trace_id or "-")
    blocks: list[RenderableType] = [table]
    for name, consumer in status.consumers.items():
        blocks.append(Text(""))
        blocks.extend(_consumer_lines(name, consumer))
    if status.consumers and any(c.dead_letter for c in status.consumers.values()):
        blocks.append(Text(f"\n`pipeline dead-letters show {status.id}` for the stored copy; "
                           f"`pipeline events retry {status.id}` replays it"))
    return Group(*blocks)
