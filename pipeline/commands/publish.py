"""``pipeline publish TYPE --data JSON|@file [--id ID] [--delay 10m | --at ISO]``.

Publishes one event and prints its id (and, delayed, when it is due).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.app import load_app
from pipeline.commands.output import print_json
from pipeline.errors import ConfigurationError, InvalidMessageError
from pipeline.publish.delay import plan_due
from pipeline.publish.publisher import Publisher
from pipeline.settings import PipelineSettings
from topology import parse_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("publish", help="publish one event and wait for the confirm")
    parser.add_argument("type", help="event type, e.g. orders.order.placed")
    parser.add_argument("--data", required=True, help="the event data as JSON, or @file.json")
    parser.add_argument("--routing-key", help="defaults to the event type")
    parser.add_argument("--subject", help="CloudEvents subject")
    parser.add_argument("--id", dest="event_id", help="the CloudEvents id (default: a new "
                        "UUID); give the same id again to retry a publish that timed out, "
                        "so consumers can drop the duplicate")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--delay", type=_duration, metavar="DURATION",
                      help="deliver it after this long: 10s, 10m, 2h or 30d (docs/scheduling.md)")
    when.add_argument("--at", type=_instant, metavar="ISO",
                      help="deliver it at this time: 2026-12-01T06:00:00+00:00 (UTC if no zone)")
    parser.add_argument("--priority", choices=("standard", "express"), default="standard",
                        help="express: its consumers handle it before waiting standard events")
    parser.add_argument("--json", action="store_true",
                        help="print {id, type} (and due_at for a delayed event) as JSON")
    parser.set_defaults(run=run)


def _duration(text: str) -> timedelta:
    days = text.strip().removesuffix("d")
    if days != text.strip() and days.isdigit():  # days, for delays only ("30d")
        return timedelta(days=int(days))
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cannot read time {text!r}: write ISO 8601, e.g. 2026-12-01T06:00:00+00:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_data(text: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--data is not valid JSON: {exc}") from None


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    if args.event_id is not None and not args.event_id.strip():
        raise ConfigurationError("--id must not be empty")
    app = load_app(settings.app)
    model = app.events.get(args.type)
    if model is None:
        known = ", ".join(sorted(app.events)) or "(none)"
        raise ConfigurationError(f"unknown event type {args.type!r}; known types: {known}")
    try:
        event = model.model_validate(read_data(args.data))
    except ValidationError as exc:
        raise InvalidMessageError(
            f"--data does not fit {model.__name__}: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from None

    try:
        due = plan_due(args.delay, args.at)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None

    async def publish() -> str:
        async with await Publisher.connect(settings, f"{settings.service_name}.cli") as publisher:
            return await publisher.publish(
                event, routing_key=args.routing_key, subject=args.subject,
                event_id=args.event_id, priority=args.priority,
                at=due.at if due else None,
            )

    event_id = asyncio.run(publish())
    if args.json:
        answer: dict[str, Any] = {"id": event_id, "type": args.type}
        if due is not None:
            answer["due_at"] = due.at.isoformat(timespec="milliseconds")
        print_json(answer)
    else:
        print(event_id if due is None else f"{event_id} due {due.at.isoformat()}")
    return 0
