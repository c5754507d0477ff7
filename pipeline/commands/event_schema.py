"""``pipeline events schema TYPE``: one event type's JSON Schema (data of the CloudEvent)."""

from __future__ import annotations

import argparse

from pipeline.app import load_app
from pipeline.commands.output import print_json
from pipeline.contract import envelope_schema, event_schema
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings


def add_schema_action(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schema`` to the ``pipeline events`` actions."""
    schema = actions.add_parser("schema", help="print one event type's JSON Schema")
    schema.add_argument("type", help="event type, e.g. orders.order.placed")
    schema.add_argument("--envelope", action="store_true",
                        help="the whole CloudEvent with this data, not the data alone")
    schema.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace, settings: PipelineSettings) -> int:
    app = load_app(settings.app)
    model = app.events.get(args.type)
    if model is None:
        known = ", ".join(sorted(app.events)) or "(none)"
        raise ConfigurationError(f"unknown event type {args.type!r}; known types: {known}")
    schema = event_schema(model)
    if args.envelope:
        envelope = envelope_schema()
        envelope["$schema"] = schema.pop("$schema")
        # Nested models' definitions move to the root, where their $refs point.
        if "$defs" in schema:
            envelope["$defs"] = schema.pop("$defs")
        envelope["properties"]["type"] = {"type": "string", "const": model.event_type}
        envelope["properties"]["data"] = schema
        envelope["required"] = [*envelope["required"], "data"]
        schema = envelope
    print_json(schema)
    return 0
