"""JSON Schemas of what travels on the wire: event data, the CloudEvents envelope, headers.

Event data schemas are the pydantic models' own (validation mode: what a
consumer accepts). ``event_schema`` gives one event type's data as a
standalone JSON Schema (2020-12); ``component_schemas`` gives several at
once with references rewritten for an AsyncAPI document's ``components``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from pipeline import headers as h
from pipeline.envelope import CAUSATION_ID, CONTENT_TYPE, CORRELATION_ID, DATA_CONTENT_TYPE
from pipeline.events import Event

JsonSchema = dict[str, Any]


def event_schema(model: type[Event]) -> JsonSchema:
    """The JSON Schema (draft 2020-12) of ``model``'s data, titled and tagged with its type."""
    schema = model.model_json_schema(mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema.setdefault("description", f"data of a {model.event_type} event")
    schema["x-event-type"] = model.event_type
    return schema


def component_schemas(
    models: Iterable[type[Event]], ref_prefix: str = "#/components/schemas/"
) -> tuple[dict[str, str], dict[str, JsonSchema]]:
    """Schemas for several models sharing one set of definitions.

    Returns (event type -> schema name, schema name -> schema); every
    ``$ref`` points at ``ref_prefix + name``, so the definitions can live
    in an AsyncAPI document's ``components.schemas``.
    """
    models = sorted(set(models), key=lambda m: m.event_type)
    keys, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=ref_prefix + "{model}"
    )
    names: dict[str, str] = {}
    for model in models:
        ref = keys[(model, "validation")]["$ref"]
        names[model.event_type] = ref.removeprefix(ref_prefix)
    return names, dict(definitions.get("$defs", {}))


def envelope_schema() -> JsonSchema:
    """The CloudEvents 1.0 structured-mode envelope as we write and accept it."""
    text = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "title": "CloudEvent",
        "description": (
            "CloudEvents 1.0, structured JSON mode (content type " + CONTENT_TYPE + "): the "
            "whole envelope is the AMQP body. Other top-level keys are extension attributes "
            "and are kept."
        ),
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {**text, "description": "unique per event (we write a UUID 4); the "
                   "AMQP message_id mirrors it; idempotent consumers key on it"},
            "source": {**text, "description": "the producing service"},
            "type": {**text, "description": "the event type; also the default routing key"},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "const": DATA_CONTENT_TYPE},
            "dataschema": {"type": "string", "format": "uri"},
            "subject": {"type": "string"},
            CORRELATION_ID: {**text, "description": "extension: the id of the first event of "
                             "the chain this one belongs to (set when a handler publishes)"},
            CAUSATION_ID: {**text, "description": "extension: the id of the event whose "
                           "handler published this one"},
            "data": {"description": "the event's fields; see the message's payload"},
        },
        "additionalProperties": True,
    }


def headers_schema() -> JsonSchema:
    """The AMQP headers the pipeline reads and writes (all optional)."""
    integer = {"type": "integer", "minimum": 0}
    text = {"type": "string"}
    properties: Mapping[str, JsonSchema] = {
        "traceparent": {**text, "description": "W3C trace context"},
        "tracestate": {**text, "description": "W3C trace context"},
        h.RETRY_COUNT: {**integer, "description": "retries so far (set on a rung's copy)"},
        h.REPLAY_COUNT: {**integer, "description": "times replayed from the dead-letter store"},
        h.FIRST_FAILED_AT: {**text, "format": "date-time"},
        h.LAST_FAILED_AT: {**text, "format": "date-time"},
        h.LAST_ERROR: {**text, "description": "type and message of the last error"},
        h.TRACEBACK: {**text, "description": "the last error's traceback (capped)"},
        h.ORIGIN_QUEUE: {**text, "description": "the consumer queue where it failed"},
        h.ORIGIN_EXCHANGE: text,
        h.ORIGIN_ROUTING_KEY: {**text, "description": "the key it was first published with"},
        h.DEAD_LETTER_REASON: {"type": "string",
                               "enum": [reason.value for reason in h.DeadLetterReason]},
        h.DEAD_LETTERED_AT: {**text, "format": "date-time"},
    }
    return {
        "type": "object",
        "title": "PipelineHeaders",
        "description": "AMQP headers; the pipeline-* ones are written by the failure path only",
        "properties": dict(properties),
    }
